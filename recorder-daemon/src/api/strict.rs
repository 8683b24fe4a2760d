//! Strict JSON shapes for request bodies. serde's derived structs also accept a JSON array of
//! the field values in order (`[null, null]` for a two-field struct); the API promises objects
//! only, so bodies are deserialised through this wrapper over `serde_json::Value`, which
//! refuses anything but an object where a struct is expected, at every depth.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Error, Value};

/// A `Value` that deserialises structs from objects only.
pub struct Strict(pub Value);

impl<'de> de::Deserializer<'de> for Strict {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(b),
            Value::Number(n) => de::Deserializer::deserialize_any(n, v),
            Value::String(s) => v.visit_string(s),
            Value::Array(a) => v.visit_seq(Seq(a.into_iter())),
            Value::Object(m) => v.visit_map(Map {
                it: m.into_iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => v.visit_none(),
            other => v.visit_some(Strict(other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(m) => v.visit_map(Map {
                it: m.into_iter(),
                value: None,
            }),
            other => Err(de::Error::invalid_type(unexpected(&other), &ObjectOf(name))),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        // The API's enums are unit variants spelled as strings; nothing nested to police.
        match self.0 {
            Value::String(s) => v.visit_enum(s.into_deserializer()),
            other => other.deserialize_enum(name, variants, v),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct ObjectOf(&'static str);

impl de::Expected for ObjectOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a JSON object ({})", self.0)
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Seq {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Strict(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map {
    it: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for Map {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.it.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let v = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("value without a key"))?;
        seed.deserialize(Strict(v))
    }
}

/// Deserialises `T` from `v`, objects only for structs.
pub fn from_value<T: de::DeserializeOwned>(v: Value) -> Result<T, Error> {
    T::deserialize(Strict(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LegUpdate, Party};
    use serde_json::json;

    #[test]
    fn structs_come_from_objects_only() {
        let p: Party = from_value(json!({"kind": "user", "id": null, "upn": "a@b"})).unwrap();
        assert_eq!((p.kind.as_str(), p.upn.as_deref()), ("user", Some("a@b")));
        assert!(
            serde_json::from_value::<Party>(json!(["user"])).is_ok(),
            "serde alone takes it"
        );
        assert!(from_value::<Party>(json!(["user"])).is_err());
        assert!(from_value::<Party>(json!({"kind": "user", "nick": "x"})).is_err());
        assert!(from_value::<Vec<Party>>(json!([{"kind": "user"}, ["phone"]])).is_err());
        let leg = json!({"callId": "c", "recordingId": "r", "botRole": "paired", "pairingKey": "k",
            "startTime": "2026-01-01T00:00:00Z", "direction": "None", "callType": "Queue Call",
            "mediaStatus": "Pending", "retentionDays": 7, "participants": [{"participantId": "p",
            "party": {"kind": "guest"}, "msi": 7, "joinTime": "2026-01-01T00:00:01Z"}],
            "pairedRecorders": [{"id": null, "participantId": "x"}]});
        let l: LegUpdate = from_value(leg.clone()).unwrap();
        assert_eq!(l.participants[0].msi, Some(7));
        let mut bad = leg.clone();
        bad["pairedRecorders"] = json!([[null, null]]);
        assert!(from_value::<LegUpdate>(bad).is_err());
        let mut bad = leg.clone();
        bad["retentionDays"] = json!(-1);
        assert!(from_value::<LegUpdate>(bad).is_err());
        let mut bad = leg;
        bad["direction"] = json!(["None"]);
        assert!(from_value::<LegUpdate>(bad).is_err());
    }
}
