//! A fake of Google's OAuth 2.0 endpoints (authorize, token, revoke), the Sheets v4 API
//! (`spreadsheets.create`, `get`, `batchUpdate`, `values.batchUpdate`, `values.append`) and
//! Drive v3 `permissions.create`, as documented. It keeps the spreadsheets it was sent, checks
//! PKCE and bearer tokens like Google does (401 for an unknown or expired token,
//! `invalid_grant` for a revoked refresh token), records every request with its time, and
//! answers scripted failures (429 with `Retry-After`, 5xx) on demand.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Running, json_error};

pub const CLIENT_ID: &str = "test-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "test-client-secret-9f8e7d";

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub body: Value,
    /// Form fields of token/revoke requests.
    pub form: BTreeMap<String, String>,
    pub bearer: Option<String>,
    pub at: Instant,
}

impl Call {
    /// A Sheets/Drive request that writes (what Google's per-minute write quota counts).
    pub fn is_write(&self) -> bool {
        self.method == "POST" && (self.path.starts_with("/v4/") || self.path.starts_with("/drive/"))
    }
}

#[derive(Clone, Debug, Default)]
pub struct Sheet {
    pub id: i64,
    pub title: String,
    /// (row, col), 0-based → value as sent.
    pub cells: BTreeMap<(u32, u32), Value>,
    pub conditional_rules: usize,
    pub rows: u64,
    pub columns: u64,
}

impl Sheet {
    pub fn cell(&self, row: u32, col: u32) -> Value {
        self.cells.get(&(row, col)).cloned().unwrap_or(Value::Null)
    }

    /// What Sheets shows in a cell: its value, or for `=SUBTOTAL(code,A1:B2)` (the only
    /// formula the service enters) the function over the numbers of that range as Sheets
    /// computes it, `#REF!` when the range holds the formula's own cell (a circular reference)
    /// and `#DIV/0!` for the average of no numbers.
    pub fn shown(&self, row: u32, col: u32) -> Value {
        let value = self.cell(row, col);
        let Some(args) = value
            .as_str()
            .and_then(|f| f.strip_prefix("=SUBTOTAL("))
            .and_then(|f| f.strip_suffix(')'))
        else {
            return value;
        };
        let (code, range) = args.split_once(',').expect("SUBTOTAL(code,range)");
        let (from, to) = range.split_once(':').expect("a range A1:B2");
        let (r1, c1) = a1_cell(from);
        let (r2, c2) = a1_cell(to);
        if (r1..=r2).contains(&row) && (c1..=c2).contains(&col) {
            return json!("#REF!");
        }
        let mut numbers = Vec::new();
        let mut non_empty = 0;
        for r in r1..=r2 {
            for c in c1..=c2 {
                match self.cell(r, c) {
                    Value::Number(n) => {
                        non_empty += 1;
                        numbers.push(n.as_f64().unwrap());
                    }
                    Value::String(s) if s.is_empty() => {}
                    Value::Null => {}
                    _ => non_empty += 1,
                }
            }
        }
        let sum: f64 = numbers.iter().sum();
        let fold = |f: fn(f64, f64) -> f64| numbers.iter().copied().reduce(f).unwrap_or(0.0);
        match code {
            "109" => json!(sum),
            "101" if numbers.is_empty() => json!("#DIV/0!"),
            "101" => json!(sum / numbers.len() as f64),
            "102" => json!(numbers.len()),
            "103" => json!(non_empty),
            "104" => json!(fold(f64::max)),
            "105" => json!(fold(f64::min)),
            other => panic!("SUBTOTAL code {other}"),
        }
    }
}

/// `B4` → (3, 1), 0-based.
fn a1_cell(a1: &str) -> (u32, u32) {
    let split = a1.find(|c: char| c.is_ascii_digit()).expect("a row number");
    let (letters, digits) = a1.split_at(split);
    let col = letters
        .bytes()
        .fold(0u32, |n, b| n * 26 + u32::from(b - b'A') + 1);
    (digits.parse::<u32>().unwrap() - 1, col - 1)
}

#[derive(Clone, Debug, Default)]
pub struct Spreadsheet {
    pub title: String,
    pub sheets: Vec<Sheet>,
    pub permissions: Vec<Value>,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// code → (challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    access_tokens: HashMap<String, bool>,
    refresh_tokens: HashMap<String, bool>,
    issued_refresh: Vec<String>,
    spreadsheets: BTreeMap<String, Spreadsheet>,
    /// Failures to answer, in order, to requests whose path contains the pattern.
    failures: VecDeque<(String, u16, Option<u64>)>,
    counter: u64,
}

#[derive(Clone)]
pub struct FakeGoogle {
    inner: Arc<Mutex<Inner>>,
    pub base: String,
    _running: Arc<Running>,
}

impl FakeGoogle {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route("/o/oauth2/v2/auth", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route("/v4/{*rest}", any(sheets))
            .route("/drive/v3/files/{id}/permissions", post(permission))
            .with_state(Arc::clone(&inner));
        let running = Running::serve(router).await;
        Self {
            inner,
            base: format!("http://{}", running.addr),
            _running: Arc::new(running),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.inner.lock().unwrap().calls.clear();
    }

    pub fn spreadsheet(&self, id: &str) -> Spreadsheet {
        self.inner.lock().unwrap().spreadsheets[id].clone()
    }

    pub fn spreadsheet_ids(&self) -> Vec<String> {
        self.inner
            .lock()
            .unwrap()
            .spreadsheets
            .keys()
            .cloned()
            .collect()
    }

    /// A spreadsheet that exists already (made by the user in Google Sheets).
    pub fn add_spreadsheet(&self, id: &str, tabs: &[&str]) {
        let mut inner = self.inner.lock().unwrap();
        let sheets = tabs
            .iter()
            .enumerate()
            .map(|(i, t)| Sheet {
                id: i as i64 * 1000,
                title: (*t).to_owned(),
                rows: 1000,
                columns: 26,
                ..Sheet::default()
            })
            .collect();
        inner.spreadsheets.insert(
            id.to_owned(),
            Spreadsheet {
                title: id.to_owned(),
                sheets,
                permissions: vec![],
            },
        );
    }

    pub fn set_cell(&self, id: &str, tab: &str, row: u32, col: u32, value: Value) {
        let mut inner = self.inner.lock().unwrap();
        let sheet = inner
            .spreadsheets
            .get_mut(id)
            .unwrap()
            .sheets
            .iter_mut()
            .find(|s| s.title == tab)
            .unwrap();
        sheet.cells.insert((row, col), value);
    }

    /// The next requests whose path contains `pattern` fail with `status`.
    pub fn fail(&self, pattern: &str, status: u16, retry_after: Option<u64>) {
        self.inner
            .lock()
            .unwrap()
            .failures
            .push_back((pattern.to_owned(), status, retry_after));
    }

    /// Every access token stops working (as if expired).
    pub fn expire_access_tokens(&self) {
        for valid in self.inner.lock().unwrap().access_tokens.values_mut() {
            *valid = false;
        }
    }

    /// The user revoked the grant in their Google account.
    pub fn revoke_grants(&self) {
        let mut inner = self.inner.lock().unwrap();
        for valid in inner.refresh_tokens.values_mut() {
            *valid = false;
        }
        for valid in inner.access_tokens.values_mut() {
            *valid = false;
        }
    }

    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        self.inner.lock().unwrap().issued_refresh.clone()
    }
}

type Shared = Arc<Mutex<Inner>>;

fn form(body: &Bytes) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn record(inner: &mut Inner, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    inner.calls.push(Call {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.to_string()),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        form: form(body),
        bearer,
        at: Instant::now(),
    });
}

fn next_id(inner: &mut Inner, prefix: &str) -> String {
    inner.counter += 1;
    format!("{prefix}{}", inner.counter)
}

async fn authorize(
    State(inner): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("response_type").map(String::as_str) != Some("code")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    let code = next_id(&mut inner, "code-");
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    inner.codes.insert(
        code.clone(),
        (
            q.get("code_challenge").cloned().unwrap_or_default(),
            redirect.clone(),
        ),
    );
    let state = q.get("state").cloned().unwrap_or_default();
    let location = format!("{redirect}?state={state}&code={code}&scope=x");
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// Client credentials from HTTP Basic or the form, as Google accepts both.
fn client_ok(headers: &HeaderMap, form: &BTreeMap<String, String>) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let expected = format!(
        "{}:{}",
        form_urlencoded::byte_serialize(CLIENT_ID.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect::<String>()
    );
    basic.as_deref() == Some(expected.as_str())
        || (form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET))
}

fn grant_error(error: &str) -> Response {
    json_error(
        400,
        json!({"error": error, "error_description": error}),
        None,
    )
}

async fn token(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    record(&mut inner, &method, &uri, &headers, &body);
    let f = form(&body);
    let grant = f.get("grant_type").map(String::as_str).unwrap_or_default();
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        if f.get("assertion").is_none_or(|a| a.split('.').count() != 3) {
            return grant_error("invalid_grant");
        }
        let access = next_id(&mut inner, "sa-access-");
        inner.access_tokens.insert(access.clone(), true);
        return axum::Json(
            json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"}),
        )
        .into_response();
    }
    if !client_ok(&headers, &f) {
        return json_error(401, json!({"error": "invalid_client"}), None);
    }
    match grant {
        "authorization_code" => {
            let code = f.get("code").cloned().unwrap_or_default();
            let Some((challenge, redirect)) = inner.codes.remove(&code) else {
                return grant_error("invalid_grant");
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            let digest = Sha256::digest(verifier.as_bytes());
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
            if computed != challenge || f.get("redirect_uri") != Some(&redirect) {
                return grant_error("invalid_grant");
            }
            let access = next_id(&mut inner, "access-");
            let refresh = format!("{}-{}", next_id(&mut inner, "refresh-"), "s3cr3t");
            inner.access_tokens.insert(access.clone(), true);
            inner.refresh_tokens.insert(refresh.clone(), true);
            inner.issued_refresh.push(refresh.clone());
            axum::Json(json!({
                "access_token": access, "refresh_token": refresh, "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/spreadsheets https://www.googleapis.com/auth/drive.file"
            }))
            .into_response()
        }
        "refresh_token" => {
            let refresh = f.get("refresh_token").cloned().unwrap_or_default();
            if inner.refresh_tokens.get(&refresh) != Some(&true) {
                return grant_error("invalid_grant");
            }
            let access = next_id(&mut inner, "access-");
            inner.access_tokens.insert(access.clone(), true);
            axum::Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"}))
                .into_response()
        }
        _ => grant_error("unsupported_grant_type"),
    }
}

async fn revoke(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    record(&mut inner, &method, &uri, &headers, &body);
    let token = form(&body).get("token").cloned().unwrap_or_default();
    match inner.refresh_tokens.get_mut(&token) {
        Some(valid) => {
            *valid = false;
            StatusCode::OK.into_response()
        }
        None => grant_error("invalid_token"),
    }
}

fn unauthenticated() -> Response {
    json_error(
        401,
        json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}),
        None,
    )
}

fn google_error(status: u16, message: &str) -> Response {
    json_error(
        status,
        json!({"error": {"code": status, "message": message}}),
        None,
    )
}

/// Checks the bearer token and the scripted failures; records the call.
fn admit(
    inner: &mut Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    record(inner, method, uri, headers, body);
    let path = uri.path().to_owned();
    if let Some(at) = inner
        .failures
        .iter()
        .position(|(p, _, _)| path.contains(p.as_str()))
    {
        let (_, status, retry_after) = inner.failures.remove(at).unwrap();
        return Some(json_error(
            status,
            json!({"error": {"code": status, "message": "scripted failure", "status": "UNAVAILABLE"}}),
            retry_after,
        ));
    }
    let bearer = inner.calls.last().and_then(|c| c.bearer.clone());
    match bearer.and_then(|b| inner.access_tokens.get(&b).copied()) {
        Some(true) => None,
        _ => Some(unauthenticated()),
    }
}

/// `'Tab'!B5` (or `Tab!B5`, or `'Tab'`) → (title, row, col).
fn parse_range(range: &str) -> Option<(String, u32, u32)> {
    let (title, cell) = match range.rsplit_once('!') {
        Some((t, c)) => (t, c),
        None => (range, "A1"),
    };
    let title = title
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .map_or_else(|| title.to_owned(), |t| t.replace("''", "'"));
    let letters: String = cell.chars().take_while(char::is_ascii_alphabetic).collect();
    let digits = &cell[letters.len()..];
    let mut col: u32 = 0;
    for ch in letters.chars() {
        col = col * 26 + (ch.to_ascii_uppercase() as u32 - 'A' as u32 + 1);
    }
    let row: u32 = digits.parse().ok()?;
    Some((title, row.checked_sub(1)?, col.checked_sub(1)?))
}

fn write_rows(sheet: &mut Sheet, row: u32, col: u32, values: &Value) {
    for (r, line) in values.as_array().into_iter().flatten().enumerate() {
        for (c, value) in line.as_array().into_iter().flatten().enumerate() {
            sheet
                .cells
                .insert((row + r as u32, col + c as u32), value.clone());
        }
    }
}

fn sheet_json(s: &Sheet) -> Value {
    json!({
        "properties": {"sheetId": s.id, "title": s.title,
                       "gridProperties": {"rowCount": s.rows, "columnCount": s.columns}},
        "conditionalFormats": vec![json!({}); s.conditional_rules],
    })
}

async fn sheets(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock().unwrap();
    if let Some(refused) = admit(&mut inner, &method, &uri, &headers, &body) {
        return refused;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let rest = uri
        .path()
        .trim_start_matches("/v4/spreadsheets")
        .trim_start_matches('/')
        .to_owned();
    if rest.is_empty() && method == Method::POST {
        let id = next_id(&mut inner, "sheet-");
        let title = request["properties"]["title"]
            .as_str()
            .unwrap_or("Untitled")
            .to_owned();
        let sheets: Vec<Sheet> = request["sheets"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| Sheet {
                id: 100 + i as i64,
                title: s["properties"]["title"]
                    .as_str()
                    .unwrap_or("Sheet1")
                    .to_owned(),
                rows: s["properties"]["gridProperties"]["rowCount"]
                    .as_u64()
                    .unwrap_or(1000),
                columns: s["properties"]["gridProperties"]["columnCount"]
                    .as_u64()
                    .unwrap_or(26),
                ..Sheet::default()
            })
            .collect();
        let answer = json!({
            "spreadsheetId": id,
            "properties": {"title": title},
            "sheets": sheets.iter().map(sheet_json).collect::<Vec<_>>(),
            "spreadsheetUrl": format!("https://docs.google.com/spreadsheets/d/{id}/edit"),
        });
        inner.spreadsheets.insert(
            id,
            Spreadsheet {
                title,
                sheets,
                permissions: vec![],
            },
        );
        return axum::Json(answer).into_response();
    }
    let (id, action) = match rest.split_once('/') {
        Some((id, more)) => (id.to_owned(), format!("/{more}")),
        None => match rest.split_once(':') {
            Some((id, verb)) => (id.to_owned(), format!(":{verb}")),
            None => (rest.clone(), String::new()),
        },
    };
    let Some(book) = inner.spreadsheets.get_mut(&id) else {
        return google_error(404, "Requested entity was not found.");
    };
    match (method.as_str(), action.as_str()) {
        ("GET", "") => axum::Json(json!({
            "spreadsheetId": id,
            "sheets": book.sheets.iter().map(sheet_json).collect::<Vec<_>>(),
        }))
        .into_response(),
        ("POST", ":batchUpdate") => {
            let mut replies = Vec::new();
            for req in request["requests"].as_array().into_iter().flatten() {
                let mut reply = json!({});
                if let Some(add) = req.get("addSheet") {
                    let title = add["properties"]["title"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if book.sheets.iter().any(|s| s.title == title) {
                        return google_error(
                            400,
                            &format!(
                                "Invalid requests[0].addSheet: A sheet with the name \"{title}\" already exists."
                            ),
                        );
                    }
                    let sheet = Sheet {
                        id: 500 + book.sheets.len() as i64,
                        title,
                        rows: add["properties"]["gridProperties"]["rowCount"]
                            .as_u64()
                            .unwrap_or(1000),
                        columns: add["properties"]["gridProperties"]["columnCount"]
                            .as_u64()
                            .unwrap_or(26),
                        ..Sheet::default()
                    };
                    reply = json!({"addSheet": sheet_json(&sheet)});
                    book.sheets.push(sheet);
                }
                if let Some(del) = req.get("deleteConditionalFormatRule") {
                    let sid = del["sheetId"].as_i64().unwrap_or(-1);
                    let Some(sheet) = book.sheets.iter_mut().find(|s| s.id == sid) else {
                        return google_error(400, "No grid with that id.");
                    };
                    if sheet.conditional_rules == 0 {
                        return google_error(400, "No conditional format at that index.");
                    }
                    sheet.conditional_rules -= 1;
                }
                if let Some(add) = req.get("addConditionalFormatRule") {
                    let sid = add["rule"]["ranges"][0]["sheetId"].as_i64().unwrap_or(-1);
                    if let Some(sheet) = book.sheets.iter_mut().find(|s| s.id == sid) {
                        sheet.conditional_rules += 1;
                    }
                }
                if let Some(clear) = req.get("updateCells") {
                    let sid = clear["range"]["sheetId"].as_i64().unwrap_or(-1);
                    if clear["fields"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("userEnteredValue")
                        && let Some(sheet) = book.sheets.iter_mut().find(|s| s.id == sid)
                    {
                        sheet.cells.clear();
                    }
                }
                replies.push(reply);
            }
            axum::Json(json!({"spreadsheetId": id, "replies": replies})).into_response()
        }
        ("POST", "/values:batchUpdate") => {
            let option = request["valueInputOption"].as_str().unwrap_or_default();
            if option != "RAW" && option != "USER_ENTERED" {
                return google_error(400, "Invalid valueInputOption");
            }
            let mut updated = 0;
            for data in request["data"].as_array().into_iter().flatten() {
                let Some((title, row, col)) = data["range"].as_str().and_then(parse_range) else {
                    return google_error(400, "Unable to parse range");
                };
                let Some(sheet) = book.sheets.iter_mut().find(|s| s.title == title) else {
                    return google_error(400, &format!("Unable to parse range: {title}"));
                };
                write_rows(sheet, row, col, &data["values"]);
                updated += 1;
            }
            axum::Json(json!({"spreadsheetId": id, "totalUpdatedRanges": updated})).into_response()
        }
        ("POST", action) if action.starts_with("/values/") && action.ends_with(":append") => {
            let range = action
                .trim_start_matches("/values/")
                .trim_end_matches(":append");
            let range: String = form_urlencoded::parse(format!("r={range}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let title = parse_range(&format!("{range}!A1"))
                .map(|r| r.0)
                .unwrap_or_default();
            let Some(sheet) = book.sheets.iter_mut().find(|s| s.title == title) else {
                return google_error(400, "Unable to parse range");
            };
            let next = sheet.cells.keys().map(|(r, _)| r + 1).max().unwrap_or(0);
            write_rows(sheet, next, 0, &request["values"]);
            axum::Json(json!({"spreadsheetId": id, "updates": {"updatedRows": request["values"].as_array().map_or(0, Vec::len)}})).into_response()
        }
        _ => google_error(404, "Not found"),
    }
}

async fn permission(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let mut inner = shared.lock().unwrap();
    if let Some(refused) = admit(&mut inner, &method, &uri, &headers, &body) {
        return refused;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(book) = inner.spreadsheets.get_mut(&id) else {
        return google_error(404, "File not found");
    };
    if request["type"] != "user"
        || request["emailAddress"]
            .as_str()
            .is_none_or(|e| !e.contains('@'))
    {
        return google_error(400, "Invalid permission");
    }
    book.permissions.push(request.clone());
    axum::Json(json!({"kind": "drive#permission", "id": "perm-1", "type": "user", "role": request["role"]})).into_response()
}
