// Synth-time checks shared by the service's parts. A value is checked when `cdk synth` runs,
// against the range the binary (or AWS) accepts, so a bad one fails there instead of at the
// function's cold start or half-way through a deployment. A token (e.g. a CfnParameter's value)
// is unknown at synth time and passes unchecked.
import { Token } from 'aws-cdk-lib';

/** A number as environment text; a token (e.g. a CfnParameter's value) stays a token. */
export function numberText(value: number): string {
  return Token.isUnresolved(value) ? Token.asString(value) : String(value);
}

/**
 * `value`, if it is a whole number from `min` to `max` (or a token). `name` is the setting as the
 * caller wrote it (with its unit for a Duration, e.g. `eventsTimeout (ms)`): the error names it,
 * and tests/deploy_files.rs reads these calls to compare defaults and ranges with template.yaml.
 */
export function checkInt(name: string, value: number, min: number, max: number): number {
  if (Token.isUnresolved(value)) {
    return value;
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min} to ${max}`;
    throw new Error(`TagbeezService: ${name} must be a whole number ${range}, not ${value}`);
  }
  return value;
}
