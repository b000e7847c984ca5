// Files the construct takes from the repository it lives in: the Lambda binary's folder, the
// bulk state machine definition (the file template.yaml deploys too) and the model's tags.
// Found from this module's own folder, so the construct works from `lib/` under ts-node, from
// the compiled `dist/lib/`, and (with best guesses) from a copy outside the repository.
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * `target/lambda/tagbeez` of the repository that holds this module: the nearest ancestor folder
 * with a Cargo.toml (works from `lib/` under ts-node and from the compiled `dist/lib/`).
 */
export function defaultBootstrapDir(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'Cargo.toml'))) {
      return path.join(dir, 'target', 'lambda', 'tagbeez');
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      // Not inside the repository: the layout of infra/dist/lib/ is the best guess.
      return path.resolve(__dirname, '..', '..', '..', 'target', 'lambda', 'tagbeez');
    }
    dir = parent;
  }
}

/** The nearest ancestor folder of this module with a Cargo.toml: the repository, if any. */
function repositoryRoot(): string | undefined {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'Cargo.toml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * The repository's `statemachine/bulk.asl.json`, the definition template.yaml deploys too
 * (outside the repository: the layout of infra/dist/lib/ is the best guess).
 */
export function defaultBulkDefinitionFile(): string {
  const root = repositoryRoot() ?? path.resolve(__dirname, '..', '..', '..');
  return path.join(root, 'statemachine', 'bulk.asl.json');
}

/** The shipped model's tags (model/labels.json), when the repository is there to read. */
export function modelTags(): string[] | undefined {
  const root = repositoryRoot();
  if (root === undefined) return undefined;
  try {
    const labels: unknown = JSON.parse(fs.readFileSync(path.join(root, 'model', 'labels.json'), 'utf8'));
    const tags = (labels as { tags?: unknown }).tags;
    return Array.isArray(tags) && tags.every((t) => typeof t === 'string') ? tags : undefined;
  } catch {
    return undefined;
  }
}
