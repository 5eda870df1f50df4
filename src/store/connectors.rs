//! SQL for connectors. List-valued fields are JSON arrays of strings.

use sqlx::{Row, SqlitePool};

use super::StoreError;
use crate::receive::connector::{
    AuthMechanism, IpRange, PermissionGroup, ProtocolLogging, ReceiveConnector, Usage,
};
use crate::routing::AddressSpace;
use crate::routing::connector::{SendAuth, SendConnector, SendUsage, SmartHost};

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Sql(sqlx::Error::Decode(
        format!("stored {what} `{value}` is not valid").into(),
    ))
}

fn json_list(value: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(value).map_err(|_| corrupt(what, value))
}

fn to_json<T: ToString>(items: &[T]) -> String {
    serde_json::to_string(&items.iter().map(ToString::to_string).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

fn named<T: Copy>(
    value: &str,
    what: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<Vec<T>, StoreError> {
    json_list(value, what)?
        .iter()
        .map(|s| {
            all.iter()
                .copied()
                .find(|v| name(*v) == s)
                .ok_or_else(|| corrupt(what, s))
        })
        .collect()
}

pub async fn load_receive(pool: &SqlitePool) -> Result<Vec<ReceiveConnector>, StoreError> {
    let mut out = Vec::new();
    for r in sqlx::query("SELECT * FROM receive_connectors ORDER BY name")
        .fetch_all(pool)
        .await?
    {
        let usage: String = r.get("usage");
        let bindings: String = r.get("bindings");
        let ranges: String = r.get("remote_ranges");
        let auth: String = r.get("auth_mechanisms");
        let groups: String = r.get("permission_groups");
        let logging: String = r.get("protocol_logging");
        out.push(ReceiveConnector {
            id: r.get("id"),
            name: r.get("name"),
            enabled: r.get("enabled"),
            usage: Usage::parse(&usage).map_err(|_| corrupt("usage", &usage))?,
            bindings: json_list(&bindings, "bindings")?
                .iter()
                .map(|b| b.parse().map_err(|_| corrupt("binding", b)))
                .collect::<Result<_, _>>()?,
            remote_ranges: json_list(&ranges, "remote ranges")?
                .iter()
                .map(|x| IpRange::parse(x).map_err(|_| corrupt("remote range", x)))
                .collect::<Result<_, _>>()?,
            fqdn: r.get("fqdn"),
            banner: r.get("banner"),
            auth_mechanisms: named(
                &auth,
                "auth mechanism",
                &AuthMechanism::ALL,
                AuthMechanism::as_str,
            )?,
            permission_groups: named(
                &groups,
                "permission group",
                &PermissionGroup::ALL,
                PermissionGroup::as_str,
            )?,
            anonymous_relay: r.get("anonymous_relay"),
            require_tls: r.get("require_tls"),
            implicit_tls: r.get("implicit_tls"),
            max_message_size: r.get::<i64, _>("max_message_size") as u64,
            max_recipients: r.get::<i64, _>("max_recipients") as u32,
            max_connections: r.get::<i64, _>("max_connections") as u32,
            max_connections_per_ip: r.get::<i64, _>("max_connections_per_ip") as u32,
            connection_timeout_secs: r.get::<i64, _>("connection_timeout") as u64,
            command_timeout_secs: r.get::<i64, _>("command_timeout") as u64,
            max_bad_commands: r.get::<i64, _>("max_bad_commands") as u32,
            max_auth_failures: r.get::<i64, _>("max_auth_failures") as u32,
            protocol_logging: ProtocolLogging::parse(&logging)
                .map_err(|_| corrupt("protocol logging", &logging))?,
        });
    }
    Ok(out)
}

const COLUMNS: &str = "name, enabled, usage, bindings, remote_ranges, fqdn, banner, auth_mechanisms, \
    permission_groups, anonymous_relay, require_tls, implicit_tls, max_message_size, max_recipients, \
    max_connections, max_connections_per_ip, connection_timeout, command_timeout, max_bad_commands, \
    max_auth_failures, protocol_logging";

fn bind_all<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    c: &'q ReceiveConnector,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    q.bind(&c.name)
        .bind(c.enabled)
        .bind(c.usage.as_str())
        .bind(to_json(&c.bindings))
        .bind(to_json(&c.remote_ranges))
        .bind(&c.fqdn)
        .bind(&c.banner)
        .bind(to_json(
            &c.auth_mechanisms
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>(),
        ))
        .bind(to_json(
            &c.permission_groups
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>(),
        ))
        .bind(c.anonymous_relay)
        .bind(c.require_tls)
        .bind(c.implicit_tls)
        .bind(c.max_message_size as i64)
        .bind(c.max_recipients as i64)
        .bind(c.max_connections as i64)
        .bind(c.max_connections_per_ip as i64)
        .bind(c.connection_timeout_secs as i64)
        .bind(c.command_timeout_secs as i64)
        .bind(c.max_bad_commands as i64)
        .bind(c.max_auth_failures as i64)
        .bind(c.protocol_logging.as_str())
}

pub async fn insert_receive(pool: &SqlitePool, c: &ReceiveConnector) -> Result<i64, StoreError> {
    let sql = format!(
        "INSERT INTO receive_connectors ({COLUMNS}) VALUES ({})",
        placeholders(COLUMNS)
    );
    Ok(bind_all(sqlx::query(&sql), c)
        .execute(pool)
        .await?
        .last_insert_rowid())
}

pub async fn update_receive(pool: &SqlitePool, c: &ReceiveConnector) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE receive_connectors SET {} WHERE id = ?",
        assignments(COLUMNS)
    );
    bind_all(sqlx::query(&sql), c)
        .bind(c.id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn delete_receive(pool: &SqlitePool, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM receive_connectors WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Inserts the default connectors the first time only (a settings flag remembers
/// it, so an admin who removes a default does not get it back).
pub async fn seed_receive_defaults(
    pool: &SqlitePool,
    defaults: &[ReceiveConnector],
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "INSERT OR IGNORE INTO settings (key, value) VALUES ('receive_defaults_created', '1')",
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let sql = format!(
        "INSERT INTO receive_connectors ({COLUMNS}) VALUES ({})",
        placeholders(COLUMNS)
    );
    for c in defaults {
        bind_all(sqlx::query(&sql), c).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(true)
}

// ---- Send connectors ----

const SEND_COLUMNS: &str = "name, enabled, usage, address_spaces, dns_routing, smart_hosts, port, auth, \
    username, password, require_tls, verify_certificate, fqdn, force_helo, max_message_size, \
    max_connections, max_per_destination, connect_timeout, command_timeout, protocol_logging";

fn placeholders(columns: &str) -> String {
    vec!["?"; columns.split(',').count()].join(", ")
}

fn assignments(columns: &str) -> String {
    columns
        .split(',')
        .map(|col| format!("{} = ?", col.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn load_send(pool: &SqlitePool) -> Result<Vec<SendConnector>, StoreError> {
    let mut out = Vec::new();
    for r in sqlx::query("SELECT * FROM send_connectors ORDER BY name")
        .fetch_all(pool)
        .await?
    {
        let usage: String = r.get("usage");
        let spaces: String = r.get("address_spaces");
        let hosts: String = r.get("smart_hosts");
        let auth: String = r.get("auth");
        let logging: String = r.get("protocol_logging");
        out.push(SendConnector {
            id: r.get("id"),
            name: r.get("name"),
            enabled: r.get("enabled"),
            usage: SendUsage::parse(&usage).map_err(|_| corrupt("usage", &usage))?,
            address_spaces: json_list(&spaces, "address spaces")?
                .iter()
                .map(|s| AddressSpace::parse(s).map_err(|_| corrupt("address space", s)))
                .collect::<Result<_, _>>()?,
            dns_routing: r.get("dns_routing"),
            smart_hosts: json_list(&hosts, "smart hosts")?
                .iter()
                .map(|s| SmartHost::parse(s).map_err(|_| corrupt("smart host", s)))
                .collect::<Result<_, _>>()?,
            port: r.get::<i64, _>("port") as u16,
            auth: SendAuth::parse(&auth).map_err(|_| corrupt("auth", &auth))?,
            username: r.get("username"),
            password: r.get("password"),
            require_tls: r.get("require_tls"),
            verify_certificate: r.get("verify_certificate"),
            fqdn: r.get("fqdn"),
            force_helo: r.get("force_helo"),
            max_message_size: r.get::<i64, _>("max_message_size") as u64,
            max_connections: r.get::<i64, _>("max_connections") as u32,
            max_per_destination: r.get::<i64, _>("max_per_destination") as u32,
            connect_timeout_secs: r.get::<i64, _>("connect_timeout") as u64,
            command_timeout_secs: r.get::<i64, _>("command_timeout") as u64,
            protocol_logging: ProtocolLogging::parse(&logging)
                .map_err(|_| corrupt("protocol logging", &logging))?,
        });
    }
    Ok(out)
}

fn bind_send<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    c: &'q SendConnector,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    q.bind(&c.name)
        .bind(c.enabled)
        .bind(c.usage.as_str())
        .bind(to_json(&c.address_spaces))
        .bind(c.dns_routing)
        .bind(to_json(&c.smart_hosts))
        .bind(i64::from(c.port))
        .bind(c.auth.as_str())
        .bind(&c.username)
        .bind(&c.password)
        .bind(c.require_tls)
        .bind(c.verify_certificate)
        .bind(&c.fqdn)
        .bind(c.force_helo)
        .bind(c.max_message_size as i64)
        .bind(i64::from(c.max_connections))
        .bind(i64::from(c.max_per_destination))
        .bind(c.connect_timeout_secs as i64)
        .bind(c.command_timeout_secs as i64)
        .bind(c.protocol_logging.as_str())
}

pub async fn insert_send(pool: &SqlitePool, c: &SendConnector) -> Result<i64, StoreError> {
    let sql = format!(
        "INSERT INTO send_connectors ({SEND_COLUMNS}) VALUES ({})",
        placeholders(SEND_COLUMNS)
    );
    Ok(bind_send(sqlx::query(&sql), c)
        .execute(pool)
        .await?
        .last_insert_rowid())
}

pub async fn update_send(pool: &SqlitePool, c: &SendConnector) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE send_connectors SET {} WHERE id = ?",
        assignments(SEND_COLUMNS)
    );
    bind_send(sqlx::query(&sql), c)
        .bind(c.id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn delete_send(pool: &SqlitePool, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM send_connectors WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
