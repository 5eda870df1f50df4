//! Small serde helpers for the input structs that the API deserializes (the CLI
//! builds the same structs by hand).

use serde::{Deserialize, Deserializer};

/// For `Option<Option<T>>` fields with `#[serde(default, deserialize_with =
/// "double_option")]`: a missing field is `None` (leave as is), `null` is
/// `Some(None)` (clear it), a value is `Some(Some(v))`.
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// For `Option<String>` fields that take a duration or a number: accepts
/// `"15m"` as well as `900` (seconds).
pub fn string_or_number<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Value>::deserialize(d)?.map(|v| match v {
        Value::Text(s) => s,
        Value::Number(n) => n.to_string(),
    }))
}

/// Implements `utoipa::ToSchema` for a type serialized as a plain string.
#[macro_export]
macro_rules! string_schema {
    ($ty:ty, $name:literal, $description:literal) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($description))
                    .into()
            }
        }
        impl utoipa::ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct T {
        #[serde(deserialize_with = "double_option")]
        quota: Option<Option<i64>>,
        #[serde(deserialize_with = "string_or_number")]
        after: Option<String>,
    }

    #[test]
    fn missing_null_and_value() {
        let t: T = serde_json::from_str("{}").unwrap();
        assert_eq!(t.quota, None);
        let t: T = serde_json::from_str(r#"{"quota": null}"#).unwrap();
        assert_eq!(t.quota, Some(None));
        let t: T = serde_json::from_str(r#"{"quota": 5, "after": 90}"#).unwrap();
        assert_eq!(t.quota, Some(Some(5)));
        assert_eq!(t.after.as_deref(), Some("90"));
        let t: T = serde_json::from_str(r#"{"after": "1h"}"#).unwrap();
        assert_eq!(t.after.as_deref(), Some("1h"));
    }
}
