//! The deployment files agree with the code: the SAM template and the CDK construct expose
//! exactly the router's routes, and pass every setting the README documents for Lambda, so a
//! new route or setting cannot ship half-wired. (Their alarms, dashboard and feedback table are
//! checked in `tests/deploy_monitoring.rs`; the parsing both use is in `tests/support/deploy.rs`.)

use std::collections::BTreeSet;

use tagbeez::api::ROUTES;

#[path = "support/deploy.rs"]
mod deploy;

use deploy::read;

/// Settings that only the local server reads: Lambda must not set them. The back-pressure
/// settings are inert in Lambda, which gives an instance one request at a time.
const LOCAL_ONLY: &[&str] = &[
    "HOST",
    "PORT",
    "DYNAMODB_ENDPOINT",
    "INFERENCE_CONCURRENCY",
    "INFERENCE_QUEUE",
    "INFERENCE_QUEUE_TIMEOUT_MS",
];

/// `RouteKey: GET /path` lines of the SAM template.
fn template_routes() -> Vec<String> {
    read("template.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RouteKey:"))
        .map(|r| r.trim().trim_matches(['"', '\'']).to_owned())
        .collect()
}

/// The variable names of the README's configuration table.
fn readme_settings() -> Vec<String> {
    let readme = read("README.md");
    let table = readme
        .split("### Configuration")
        .nth(1)
        .expect("README has a Configuration section");
    let table = table.split("\n#").next().unwrap();
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// The variable names `src/config.rs` reads (`get("NAME")`).
fn config_settings() -> BTreeSet<String> {
    read("src/config.rs")
        .split("get(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_sam_template_routes_are_exactly_the_routers() {
    let routes = template_routes();
    let unique: BTreeSet<&str> = routes.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), routes.len(), "a route twice: {routes:?}");
    assert_eq!(unique, ROUTES.iter().copied().collect(), "template.yaml");
}

#[test]
fn the_readme_documents_every_setting_the_code_reads() {
    let documented: BTreeSet<String> = readme_settings().into_iter().collect();
    assert_eq!(documented, config_settings());
    assert!(documented.len() >= 12, "{documented:?}");
}

#[test]
fn sam_and_cdk_pass_every_lambda_setting_and_no_local_one() {
    let template = read("template.yaml");
    let construct = read("infra/lib/tagbeez-service.ts");
    for name in readme_settings() {
        let in_template = template.contains(&format!("{name}:"));
        let in_construct = construct.contains(&format!("{name}:"));
        let lambda = !LOCAL_ONLY.contains(&name.as_str());
        assert_eq!(in_template, lambda, "template.yaml and {name}");
        assert_eq!(
            in_construct, lambda,
            "infra/lib/tagbeez-service.ts and {name}"
        );
    }
}
