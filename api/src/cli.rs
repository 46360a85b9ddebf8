//! The operator commands of the `switchboard` binary: tenants, their keys and LiveKit
//! allowlists, and operator keys straight in the database; contacts and campaigns through
//! the REST API over HTTP.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::{Path, PathBuf};
use switchboard_engine::campaign::LivekitAllowlist;
use switchboard_engine::store::{ApiKeyScope, Store};
use switchboard_engine::{OperatorKeyId, TenantId};

/// Where the API is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The server's base URL.
    #[arg(
        long,
        env = "SWITCHBOARD_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The API key (`switchboard tenants create` prints one).
    #[arg(
        long,
        env = "SWITCHBOARD_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub key: Option<String>,
}

/// `switchboard tenants ...` (direct database access).
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Creates a tenant and prints its id and first API key (shown only once).
    Create {
        /// The tenant's name.
        name: String,
        /// Give the key the supervisor scope: the live view of this tenant's calls
        /// (`--admin` is its former name).
        #[arg(long, alias = "admin")]
        supervisor: bool,
    },
    /// Lists tenants.
    List,
    /// Sets which LiveKit SIP trunk ids and agent names the tenant may use (replacing what
    /// was set; no flag: nothing is allowed, and its LiveKit agents are refused), or prints
    /// them with `--show`.
    Livekit {
        /// The tenant's id.
        id: i64,
        /// An outbound SIP trunk id the tenant may name (repeat for several).
        #[arg(long = "trunk")]
        trunks: Vec<String>,
        /// An agent name the tenant may dispatch (repeat for several).
        #[arg(long = "agent-name")]
        agent_names: Vec<String>,
        /// Print the current allowlist and change nothing.
        #[arg(long, conflicts_with_all = ["trunks", "agent_names"])]
        show: bool,
    },
}

/// `switchboard operators ...` (direct database access): keys of whoever runs
/// Switchboard, which reach every tenant's live view and no tenant's data routes.
#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Creates an operator key and prints it (shown only once).
    Create {
        /// Who holds it.
        name: String,
    },
    /// Lists operator keys (never the keys themselves).
    List,
    /// Revokes an operator key; it stops working at once.
    Revoke {
        /// The key's id (from `operators list`).
        id: i64,
    },
}

/// `switchboard keys ...` (direct database access).
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Creates an API key for a tenant and prints it (shown only once).
    Create {
        /// The tenant's id.
        #[arg(long)]
        tenant: i64,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Give the key the supervisor scope (`--admin` is its former name).
        #[arg(long, alias = "admin")]
        supervisor: bool,
    },
}

/// `switchboard contacts ...` (through the API).
#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Imports contacts from a CSV file and prints the per-row report.
    Import {
        /// The CSV file (header row first).
        file: PathBuf,
        /// `all_or_nothing` (default) or `skip_bad_rows`.
        #[arg(long)]
        mode: Option<String>,
        /// Region for national-format numbers, e.g. `US`.
        #[arg(long)]
        region: Option<String>,
        /// Also add the imported contacts to this list.
        #[arg(long)]
        list: Option<String>,
    },
    /// Erases a contact's personal data at its callee's request (keeps its calls as
    /// anonymous counts and its number's suppression as a hash); prints what it did.
    Erase {
        /// The contact's id.
        id: i64,
        /// Why (recorded with the erasure).
        #[arg(long)]
        reason: String,
    },
}

/// `switchboard campaigns ...` (through the API).
#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Creates a campaign from a JSON or TOML configuration file; prints it.
    Create {
        /// `.json` or `.toml`.
        file: PathBuf,
    },
    /// Lists campaigns.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
    },
    /// Starts a campaign.
    Start {
        /// Campaign id.
        id: i64,
    },
    /// Pauses a campaign.
    Pause {
        /// Campaign id.
        id: i64,
    },
    /// Resumes a paused campaign.
    Resume {
        /// Campaign id.
        id: i64,
    },
    /// Stops a campaign for good.
    Stop {
        /// Campaign id.
        id: i64,
    },
    /// Prints a campaign's progress, rates and cost.
    Status {
        /// Campaign id.
        id: i64,
    },
}

/// Runs a tenants command against the database.
pub async fn tenants(store: &Store, command: TenantsCommand) -> anyhow::Result<()> {
    match command {
        TenantsCommand::Create { name, supervisor } => {
            let tenant = store.create_tenant(&name).await?;
            let key = new_key(store, tenant.id, "initial", supervisor).await?;
            println!("tenant_id: {}", tenant.id);
            println!("api_key: {key}");
            eprintln!("keep the key: it is shown only once");
        }
        TenantsCommand::List => {
            for t in store.list_tenants().await? {
                let limit = t
                    .max_running_campaigns
                    .map_or_else(|| "-".to_owned(), |n| n.to_string());
                println!("{}\t{}\tmax_running_campaigns={limit}", t.id, t.name);
            }
        }
        TenantsCommand::Livekit {
            id,
            trunks,
            agent_names,
            show,
        } => {
            let tenant = TenantId(id);
            let list = if show {
                store.tenant(tenant).await?;
                store.livekit_allowlist(tenant).await?
            } else {
                let list = LivekitAllowlist {
                    trunks: trunks.into_iter().collect(),
                    agent_names: agent_names.into_iter().collect(),
                };
                store.set_livekit_allowlist(tenant, &list).await?
            };
            let join = |set: &std::collections::BTreeSet<String>| {
                set.iter().cloned().collect::<Vec<_>>().join(",")
            };
            println!("tenant_id: {tenant}");
            println!("trunks: {}", join(&list.trunks));
            println!("agent_names: {}", join(&list.agent_names));
        }
    }
    Ok(())
}

/// Runs an operators command against the database.
pub async fn operators(store: &Store, command: OperatorsCommand) -> anyhow::Result<()> {
    match command {
        OperatorsCommand::Create { name } => {
            let (record, key) = crate::auth::create_operator_key(store, &name).await?;
            println!("operator_key_id: {}", record.id);
            println!("operator_key: {key}");
            eprintln!("keep the key: it is shown only once");
        }
        OperatorsCommand::List => {
            for k in store.list_operator_keys().await? {
                let state = k
                    .revoked_at
                    .map_or_else(|| "live".to_owned(), |at| format!("revoked {at}"));
                println!("{}\t{}\t{}...\t{state}", k.id, k.name, k.prefix);
            }
        }
        OperatorsCommand::Revoke { id } => {
            store.revoke_operator_key(OperatorKeyId(id)).await?;
            println!("operator key {id} revoked");
        }
    }
    Ok(())
}

/// Runs a keys command against the database.
pub async fn keys(store: &Store, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            tenant,
            name,
            supervisor,
        } => {
            let tenant = store.tenant(TenantId(tenant)).await?;
            let key = new_key(store, tenant.id, &name, supervisor).await?;
            println!("api_key: {key}");
            eprintln!("keep the key: it is shown only once");
        }
    }
    Ok(())
}

async fn new_key(
    store: &Store,
    tenant: TenantId,
    name: &str,
    supervisor: bool,
) -> anyhow::Result<String> {
    let scope = if supervisor {
        ApiKeyScope::Supervisor
    } else {
        ApiKeyScope::Tenant
    };
    let (_, key) = crate::auth::create_key(store, tenant, name, scope).await?;
    Ok(key)
}

/// A client of the REST API.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn new(remote: &Remote) -> anyhow::Result<Client> {
        let Some(key) = remote.key.clone() else {
            bail!("no api key: pass --key or set SWITCHBOARD_API_KEY");
        };
        Ok(Client {
            http: reqwest::Client::new(),
            base: remote.url.trim_end_matches('/').to_owned(),
            key,
        })
    }

    /// A client of the server at `url` holding `key`.
    #[cfg(feature = "demo")]
    pub(crate) fn with_key(url: &str, key: String) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_owned(),
            key,
        }
    }

    /// Sends a request; a problem response becomes an error naming every field.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.key);
        if let Some((content_type, bytes)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.context("reading the response")?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(value);
        }
        bail!("{}", describe_problem(status, &value))
    }
}

/// A problem response as lines a person reads.
fn describe_problem(status: StatusCode, value: &Value) -> String {
    let mut out = format!(
        "{} {}: {}",
        status.as_u16(),
        value["title"].as_str().unwrap_or("error"),
        value["detail"].as_str().unwrap_or(&value.to_string())
    );
    if let Some(errors) = value["errors"].as_array() {
        for e in errors {
            out.push_str(&format!(
                "\n  {}: {}",
                e["field"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}

fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// Runs a contacts command through the API.
pub async fn contacts(remote: &Remote, command: ContactsCommand) -> anyhow::Result<()> {
    let client = Client::new(remote)?;
    match command {
        ContactsCommand::Import {
            file,
            mode,
            region,
            list,
        } => {
            let csv =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (k, v) in [("mode", mode), ("region", region), ("list", list)] {
                if let Some(v) = v {
                    query.append_pair(k, &v);
                }
            }
            let query = query.finish();
            let path = format!("/api/v1/contacts/import?{query}");
            let report = client
                .send(Method::POST, &path, Some(("text/csv", csv)))
                .await?;
            print(&report);
        }
        ContactsCommand::Erase { id, reason } => {
            let body = serde_json::to_vec(&serde_json::json!({ "reason": reason }))?;
            let path = format!("/api/v1/contacts/{id}/erase");
            let report = client
                .send(Method::POST, &path, Some(("application/json", body)))
                .await?;
            print(&report);
        }
    }
    Ok(())
}

/// A campaign configuration file, JSON or TOML (by extension; JSON when unsure).
pub fn read_config(file: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let is_toml = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if is_toml {
        let value: toml::Value = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", file.display()))?;
        Ok(serde_json::to_value(value)?)
    } else {
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))
    }
}

/// Runs a campaigns command through the API.
pub async fn campaigns(remote: &Remote, command: CampaignsCommand) -> anyhow::Result<()> {
    let client = Client::new(remote)?;
    let control = |id: i64, action: &str| format!("/api/v1/campaigns/{id}/{action}");
    match command {
        CampaignsCommand::Create { file } => {
            let config = read_config(&file)?;
            let body = serde_json::to_vec(&config)?;
            let created = client
                .send(
                    Method::POST,
                    "/api/v1/campaigns",
                    Some(("application/json", body)),
                )
                .await?;
            print(&created);
        }
        CampaignsCommand::List { status } => {
            let mut cursor: Option<String> = None;
            println!("id\tstatus\tname");
            loop {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query.append_pair("limit", "500");
                if let Some(s) = &status {
                    query.append_pair("status", s);
                }
                if let Some(c) = &cursor {
                    query.append_pair("cursor", c);
                }
                let path = format!("/api/v1/campaigns?{}", query.finish());
                let page = client.send(Method::GET, &path, None).await?;
                for c in page["items"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}",
                        c["id"],
                        c["status"].as_str().unwrap_or(""),
                        c["config"]["name"].as_str().unwrap_or("")
                    );
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        CampaignsCommand::Start { id } => print(
            &client
                .send(Method::POST, &control(id, "start"), None)
                .await?,
        ),
        CampaignsCommand::Pause { id } => print(
            &client
                .send(Method::POST, &control(id, "pause"), None)
                .await?,
        ),
        CampaignsCommand::Resume { id } => print(
            &client
                .send(Method::POST, &control(id, "resume"), None)
                .await?,
        ),
        CampaignsCommand::Stop { id } => print(
            &client
                .send(Method::POST, &control(id, "stop"), None)
                .await?,
        ),
        CampaignsCommand::Status { id } => print(
            &client
                .send(Method::GET, &control(id, "status"), None)
                .await?,
        ),
    }
    Ok(())
}
