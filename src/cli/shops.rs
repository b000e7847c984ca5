//! The operators' commands: `tagbeez profile put|get|delete <shop_id>` and `tagbeez
//! experiment-report <shop_id> <name>`, against the tables the service uses
//! (`PROFILE_TABLE_NAME`, `EXPERIMENT_TABLE_NAME`), through the same use cases (and checks)
//! as the HTTP routes.

use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::service::Tagger;
use crate::shops::report::render_table;
use crate::shops::Profile;

const PROFILE_USAGE: &str = "usage: tagbeez profile put <shop_id> [file.json] | get <shop_id> | \
                             delete <shop_id> (put reads the profile from stdin without a file)";
const REPORT_USAGE: &str = "usage: tagbeez experiment-report <shop_id> <name> [--json]";

/// `tagbeez profile ...`: what to print on stdout, or why not.
pub async fn profile(tagger: &Tagger, args: &[String]) -> Result<String, String> {
    if tagger.config().profiles.is_none() {
        return Err(need("profile", "PROFILE_TABLE_NAME"));
    }
    let arg = |i: usize| args.get(i).map(String::as_str);
    match (arg(0), arg(1)) {
        (Some("put"), Some(shop_id)) => {
            let text = read_input(arg(2)).await?;
            let profile: Profile = serde_json::from_str(&text)
                .map_err(|e| format!("the profile is not a valid profile: {e}"))?;
            let stored = tagger
                .put_profile(shop_id, profile)
                .await
                .map_err(|e| e.to_string())?;
            Ok(pretty(
                json!({"shop_id": shop_id, "profile": stored.profile,
                "updated_at": stored.updated_at, "version": stored.version}),
            ))
        }
        (Some("get"), Some(shop_id)) => {
            let stored = tagger.profile(shop_id).await.map_err(|e| e.to_string())?;
            Ok(pretty(
                json!({"shop_id": shop_id, "profile": stored.profile,
                "updated_at": stored.updated_at, "version": stored.version}),
            ))
        }
        (Some("delete"), Some(shop_id)) => {
            let deleted = tagger
                .delete_profile(shop_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(pretty(json!({"shop_id": shop_id, "deleted": deleted})))
        }
        _ => Err(PROFILE_USAGE.into()),
    }
}

/// `tagbeez experiment-report <shop_id> <name> [--json]`: the report as a table (or JSON).
pub async fn experiment_report(tagger: &Tagger, args: &[String]) -> Result<String, String> {
    let config = tagger.config();
    if config.profiles.is_none() || config.experiments.is_none() {
        return Err(need(
            "experiment-report",
            "PROFILE_TABLE_NAME and EXPERIMENT_TABLE_NAME",
        ));
    }
    let as_json = args.iter().any(|a| a == "--json");
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--json").collect();
    let [shop_id, name] = rest.as_slice() else {
        return Err(REPORT_USAGE.into());
    };
    let report = tagger
        .experiment_report(shop_id, name)
        .await
        .map_err(|e| e.to_string())?;
    Ok(if as_json {
        pretty(serde_json::to_value(&report).map_err(|e| e.to_string())?)
    } else {
        render_table(&report)
    })
}

fn need(command: &str, tables: &str) -> String {
    format!(
        "{command} works on the service's DynamoDB tables: set {tables} (and DYNAMODB_ENDPOINT \
         for a local server)"
    )
}

async fn read_input(file: Option<&str>) -> Result<String, String> {
    match file {
        Some(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("cannot read {path}: {e}")),
        None => {
            let mut text = String::new();
            tokio::io::stdin()
                .read_to_string(&mut text)
                .await
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            Ok(text)
        }
    }
}

fn pretty(value: serde_json::Value) -> String {
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
}
