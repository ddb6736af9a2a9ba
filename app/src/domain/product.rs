//! Products: validated on the way in, versioned so that concurrent edits do not overwrite each
//! other.

use super::error::DomainError;
use super::user::UserId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

/// A ULID: unique, and sorts by creation time, so listing in id order lists oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(ulid::Ulid);

/// Monotonic within a millisecond, so ids made in one process sort in creation order.
static IDS: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());

impl ProductId {
    pub fn new_at(at: OffsetDateTime) -> Self {
        let at = std::time::SystemTime::from(at);
        let mut ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
        // Overflow needs 2^80 ids in one millisecond; a random one is then as good.
        ProductId(
            ids.generate_from_datetime(at)
                .unwrap_or_else(|_| ulid::Ulid::from_datetime(at)),
        )
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ProductId {
    /// An id a client supplies as data (an import) rather than in a URL: a bad one is invalid,
    /// not missing.
    pub fn parse(field: &str, s: &str) -> Result<Self, DomainError> {
        Self::canonical(s).ok_or_else(|| {
            DomainError::invalid(
                field,
                format!(
                    "must be a ULID in its one written form (26 characters of Crockford base32, upper case, the first 0 to 7), got {s:?}"
                ),
            )
        })
    }

    /// The id `s` writes, if `s` is that id's one written form: other spellings the decoder
    /// would take (lower case, a first character past 7, whose extra bits it drops) are not
    /// aliases of it.
    fn canonical(s: &str) -> Option<Self> {
        let id = ulid::Ulid::from_string(s).ok()?;
        (id.to_string() == s).then_some(ProductId(id))
    }
}

impl FromStr for ProductId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::canonical(s).ok_or_else(|| DomainError::NotFound(format!("product {s}")))
    }
}

/// Text as stored: NFC, so one name is one string however it was typed, and free of characters
/// that hide or reorder what is shown (controls, bidi overrides, zero-width marks). Descriptions
/// may keep line breaks and tabs.
fn clean_text(field: &str, raw: &str, multiline: bool) -> Result<String, DomainError> {
    use unicode_normalization::UnicodeNormalization;
    // Printable ASCII is NFC and shows what it holds: most text, spared the checks below.
    let plain =
        |b: u8| (0x20..0x7f).contains(&b) || (multiline && matches!(b, b'\n' | b'\r' | b'\t'));
    if raw.bytes().all(plain) {
        return Ok(raw.to_string());
    }
    let hidden = |c: char| {
        matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}')
    };
    if let Some(c) = raw
        .chars()
        .find(|&c| (c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'))) || hidden(c))
    {
        return Err(DomainError::invalid(
            field,
            format!(
                "must not hold control, bidirectional-override or invisible characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    // Most text arrives in NFC already: the quick check spares it a rewrite.
    if unicode_normalization::is_nfc_quick(raw.chars()) == unicode_normalization::IsNormalized::Yes
    {
        return Ok(raw.to_string());
    }
    Ok(raw.nfc().collect())
}

/// An amount in the currency's minor units (cents for EUR), so no float ever rounds a price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: ProductId,
    pub name: String,
    pub description: String,
    pub price: Price,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Starts at 1, grows by one with each update; an update must name the version it read.
    pub version: u64,
    /// Who made it and who changed it last (`import` for the import path); None for products
    /// stored before writes were attributed.
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
    /// The import sender's version of what this product holds (a counter or a time it chose);
    /// an import older than it is not applied. None for products no versioned import wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_version: Option<u64>,
}

/// The fields a client sets, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub name: String,
    pub description: String,
    pub price: Price,
}

/// A product as a source sends it (the import path): its id, its fields, and the sender's
/// version of them, if it keeps one.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub id: ProductId,
    pub fields: NewProduct,
    pub source_version: Option<u64>,
}

pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 2000;

impl NewProduct {
    pub fn parse(name: &str, description: &str, price: Price) -> Result<Self, DomainError> {
        let name = clean_text("name", name.trim(), false)?;
        let description = clean_text("description", description, true)?;
        let chars = name.chars().count();
        if chars == 0 || chars > NAME_MAX {
            return Err(DomainError::invalid(
                "name",
                format!("must be 1 to {NAME_MAX} characters, got {chars}"),
            ));
        }
        let chars = description.chars().count();
        if chars > DESCRIPTION_MAX {
            return Err(DomainError::invalid(
                "description",
                format!("must be at most {DESCRIPTION_MAX} characters, got {chars}"),
            ));
        }
        if price.amount < 0 {
            return Err(DomainError::invalid(
                "price.amount",
                "must be zero or more, in minor units (cents for EUR)",
            ));
        }
        if !is_iso4217(&price.currency) {
            return Err(DomainError::invalid(
                "price.currency",
                format!(
                    "must be an ISO 4217 code such as EUR or USD, got {:?}",
                    price.currency
                ),
            ));
        }
        Ok(NewProduct {
            name,
            description,
            price,
        })
    }

    pub fn create(self, by: &UserId, now: OffsetDateTime) -> Product {
        self.create_as(ProductId::new_at(now), by, now)
    }

    /// A first version under an id chosen elsewhere, as imports bring them.
    pub fn create_as(self, id: ProductId, by: &UserId, now: OffsetDateTime) -> Product {
        Product {
            id,
            name: self.name,
            description: self.description,
            price: self.price,
            created_at: now,
            updated_at: now,
            version: 1,
            created_by: Some(by.clone()),
            updated_by: Some(by.clone()),
            source_version: None,
        }
    }
}

impl Product {
    /// Whether the product already holds these fields: a repeated import changes nothing.
    pub fn holds(&self, fields: &NewProduct) -> bool {
        self.name == fields.name
            && self.description == fields.description
            && self.price == fields.price
    }

    /// This product with `fields` applied, as the next version.
    pub fn revised(&self, fields: NewProduct, by: &UserId, now: OffsetDateTime) -> Product {
        Product {
            name: fields.name,
            description: fields.description,
            price: fields.price,
            updated_at: now,
            version: self.version + 1,
            updated_by: Some(by.clone()),
            ..self.clone()
        }
    }
}

/// Which page of the product list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    /// The last id of the previous page; the page starts after it.
    pub after: Option<ProductId>,
}

pub const PAGE_DEFAULT: usize = 20;
pub const PAGE_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Product>,
    /// Set when more products follow: pass it back to read them.
    pub next: Option<ProductId>,
}

impl Page {
    /// A page from up to `limit + 1` products read in order: the extra one only says that more
    /// follow, so the last page never carries a cursor to an empty page.
    pub fn from_lookahead(mut items: Vec<Product>, limit: usize) -> Page {
        let more = items.len() > limit;
        items.truncate(limit);
        Page {
            next: more.then(|| items.last().map(|p| p.id)).flatten(),
            items,
        }
    }
}

/// Active ISO 4217 currency codes.
const ISO4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB \
BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD \
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR \
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR \
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK \
SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES \
VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";

/// The currencies a price may be in.
pub fn currencies() -> impl Iterator<Item = &'static str> {
    ISO4217.split_ascii_whitespace()
}

fn is_iso4217(code: &str) -> bool {
    code.len() == 3 && currencies().any(|c| c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(amount: i64, currency: &str) -> Price {
        Price {
            amount,
            currency: currency.into(),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded_in_characters_not_bytes() {
        let p = NewProduct::parse("  Tea  ", "", price(100, "EUR")).unwrap();
        assert_eq!(p.name, "Tea");
        assert!(NewProduct::parse(&"é".repeat(200), "", price(1, "EUR")).is_ok());
        let err = NewProduct::parse(&"é".repeat(201), "", price(1, "EUR")).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "name"));
        let err = NewProduct::parse("   ", "", price(1, "EUR")).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "name"));
    }

    #[test]
    fn description_price_and_currency_rules_name_their_field() {
        let field = |r: Result<NewProduct, DomainError>| match r.unwrap_err() {
            DomainError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(NewProduct::parse("a", &"x".repeat(2001), price(1, "EUR"))),
            "description"
        );
        assert_eq!(
            field(NewProduct::parse("a", "", price(-1, "EUR"))),
            "price.amount"
        );
        assert_eq!(
            field(NewProduct::parse("a", "", price(1, "eur"))),
            "price.currency"
        );
        assert_eq!(
            field(NewProduct::parse("a", "", price(1, "XYZ"))),
            "price.currency"
        );
        assert!(NewProduct::parse("a", &"x".repeat(2000), price(0, "JPY")).is_ok());
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let a = ProductId::new_at(t0);
        let b = ProductId::new_at(t0 + time::Duration::milliseconds(1));
        assert!(a < b);
        assert_eq!(a.to_string().parse::<ProductId>().unwrap(), a);
    }

    #[test]
    fn an_id_has_one_written_form() {
        let id = ProductId::new_at(OffsetDateTime::now_utc()).to_string();
        assert!(id.parse::<ProductId>().is_ok());
        let lower = id.to_lowercase();
        let overflow = format!("8{}", &id[1..]);
        assert!(
            ulid::Ulid::from_string(&overflow).is_ok(),
            "the decoder takes it"
        );
        for alias in [lower.as_str(), overflow.as_str()] {
            assert!(
                matches!(alias.parse::<ProductId>(), Err(DomainError::NotFound(_))),
                "{alias}"
            );
            assert!(ProductId::parse("id", alias).is_err(), "{alias}");
        }
    }

    #[test]
    fn names_are_nfc_and_show_what_they_hold() {
        let price = || price(1, "EUR");
        // "é" typed as e + combining acute is stored as the one character.
        let p = NewProduct::parse("Cafe\u{301}", "", price()).unwrap();
        assert_eq!(p.name, "Caf\u{e9}");
        for hidden in [
            "Tea\u{0}",
            "Tea\u{7}",
            "\u{202E}aeT",
            "Te\u{200B}a",
            "Tea\u{FEFF}",
        ] {
            let err = NewProduct::parse(hidden, "", price())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("name: must not hold control"),
                "{hidden:?}: {err}"
            );
        }
        assert!(NewProduct::parse("Tea", "line one\nline two\tend", price()).is_ok());
        assert!(NewProduct::parse("Tea", "\u{202E}", price()).is_err());
    }

    #[test]
    fn revision_bumps_version_and_keeps_identity() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let (ann, bob) = (UserId("ann".into()), UserId("bob".into()));
        let p = NewProduct::parse("a", "", price(1, "EUR"))
            .unwrap()
            .create(&ann, t0);
        let t1 = t0 + time::Duration::seconds(5);
        let q = p.revised(
            NewProduct::parse("b", "d", price(2, "USD")).unwrap(),
            &bob,
            t1,
        );
        assert_eq!((q.id, q.created_at, q.version), (p.id, t0, 2));
        assert_eq!((q.name.as_str(), q.updated_at), ("b", t1));
        assert_eq!((q.created_by, q.updated_by), (Some(ann), Some(bob)));
    }

    #[test]
    fn lookahead_page_has_a_cursor_only_when_more_follow() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let items: Vec<Product> = (0..3)
            .map(|i| {
                NewProduct::parse(&format!("p{i}"), "", price(1, "EUR"))
                    .unwrap()
                    .create(&UserId("ann".into()), t0 + time::Duration::milliseconds(i))
            })
            .collect();
        let page = Page::from_lookahead(items.clone(), 2);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next, Some(items[1].id));
        let page = Page::from_lookahead(items[..2].to_vec(), 2);
        assert_eq!(page.next, None);
    }
}
