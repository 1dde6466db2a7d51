//! The CLI's HTTP client: the CLI drives the server through the same API
//! as every other user, so what it can do, the API can do.

use anyhow::{Context, anyhow, bail};
use p38_core::page::Page;
use p38_server::error::ErrorBody;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::args::ClientArgs;
use crate::output::Column;

/// A server's answer: read as the API's own type, and the JSON as the
/// server sent it, which `--json` prints (with any field this CLI does
/// not know).
#[derive(Debug)]
pub struct Answer<T> {
    /// The answer as the API's type.
    pub data: T,
    /// The answer as sent.
    pub raw: Value,
}

/// A connection to a Project38 server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Print JSON rather than tables.
    pub json: bool,
}

impl Client {
    /// Builds a client; the token comes from `--token`/`P38_TOKEN`, else the
    /// admin token file in the data folder.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let token = match &args.token {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let path = args.data_dir.join("admin.token");
                std::fs::read_to_string(&path)
                    .map(|s| s.trim().to_string())
                    .with_context(|| {
                        format!(
                            "no token: set P38_TOKEN or pass --token (no readable {})",
                            path.display()
                        )
                    })?
            }
        };
        let base = server_url(&args.url)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base,
            token,
            json: args.json,
        })
    }

    /// Sends a request and returns the JSON body, or the server's error as
    /// a readable message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow!("cannot reach the Project38 server at {}: {e}\nhint: start it with `p38 up`, or point P38_URL at it", self.base)
        })?;
        let status = resp.status();
        let text = resp.text().await.context("reading the response")?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if status.is_success() {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)));
        }
        // An error message may quote what an agent or a model wrote (a
        // name, a finding): one line, escaped, like every other server text.
        // A body not in the API's error shape (a proxy's page) is shown
        // as it came, escaped.
        let (message, field) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => (crate::safe_text::line(&b.error.message), b.error.field),
            Err(_) => {
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                (crate::safe_text::json_compact(&value), None)
            }
        };
        match field.as_deref().map(crate::safe_text::line) {
            Some(f) => bail!("{message} (field: {f}) [HTTP {}]", status.as_u16()),
            None => bail!("{message} [HTTP {}]", status.as_u16()),
        }
    }

    /// Sends a request and reads the answer as the API's type `T`, keeping
    /// the JSON as sent for `--json`.
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer<T>> {
        let shown = format!("{method} {path}");
        let raw = self.call(method, path, body).await?;
        let data = T::deserialize(&raw).map_err(|e| {
            anyhow!(
                "the server's answer to {} is not what this p38 understands ({}); are the CLI and the server the same version? `--json` prints the answer as it came",
                crate::safe_text::line(&shown),
                crate::safe_text::line(&e.to_string())
            )
        })?;
        Ok(Answer { data, raw })
    }

    /// GET, read as `T`.
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Answer<T>> {
        self.call_as(Method::GET, path, None).await
    }

    /// POST, read as `T`.
    pub async fn post_as<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Answer<T>> {
        self.call_as(Method::POST, path, Some(body)).await
    }

    /// Fetches one page of a cursor-paginated listing and prints it: a
    /// table of `columns` and the next-page hint, or the JSON with `--json`.
    pub async fn print_page<T: DeserializeOwned>(
        &self,
        path: &str,
        limit: u32,
        status: Option<&str>,
        cursor: Option<&str>,
        columns: &[Column<T>],
    ) -> anyhow::Result<()> {
        let mut q = format!("{path}?limit={limit}");
        if let Some(s) = status {
            q.push_str(&format!("&status={}", seg(s)));
        }
        if let Some(cur) = cursor {
            q.push_str(&format!("&cursor={}", seg(cur)));
        }
        let page = self.get_as::<Page<T>>(&q).await?;
        if self.json {
            crate::output::json(&page.raw);
        } else {
            crate::output::table(&page.data.items, columns);
            crate::output::next_page(page.data.next_cursor.as_deref());
        }
        Ok(())
    }

    /// POST.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }
}

/// The server's address from `--url` / `P38_URL`, without a trailing
/// slash; an address that is not an http(s) URL with a host is refused,
/// saying what is expected.
pub fn server_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim();
    let shown = crate::safe_text::line(url);
    let ok = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if ok.is_none() {
        let hint = if url.contains("://") {
            String::new()
        } else {
            format!(" (did you mean http://{shown}?)")
        };
        bail!(
            "the server URL (P38_URL or --url) `{shown}` is not an http:// or https:// URL: expected http://host:port, e.g. http://127.0.0.1:3838{hint}"
        );
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Percent-encodes a path segment (agent names are plain, but be safe).
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
