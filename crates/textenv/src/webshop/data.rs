//! WebShop's data files and their normalisation (`web_agent_site/engine/engine.py::load_products`
//! and `goal.py::get_human_goals`), read from files in the original JSON schemas:
//!
//! * products (`items_shuffle*.json`): a list of `{asin, name, category, query, product_category,
//!   full_description, small_description, pricing, customization_options, images, ...}`;
//! * attributes (`items_ins_v2*.json`): `{asin: {"attributes": [...]}}`;
//! * human instructions (`items_human_ins.json`): `{asin: [{"instruction", "instruction_attributes",
//!   "instruction_options"}]}`.
//!
//! One optional field is ours: `name_nouns` on a product, the nouns spaCy's `en_core_web_sm` finds
//! in its `name` (the type reward needs them; spaCy cannot run here, so they are precomputed data).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pyunicode;

/// Errors reading a catalogue; each names the file and the product.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path}: {reason}")]
    Schema { path: String, reason: String },
}

/// A JSON object read with its key order kept (option groups are shown in file order).
#[derive(Debug, Clone, Default, PartialEq)]
struct Ordered<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        d.deserialize_any(V_(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
struct RawOption {
    value: String,
    #[serde(default)]
    image: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawProduct {
    asin: String,
    name: String,
    category: String,
    query: String,
    product_category: String,
    full_description: String,
    small_description: Value,
    #[serde(default)]
    pricing: Option<String>,
    #[serde(default)]
    customization_options: Option<Ordered<Option<Vec<RawOption>>>>,
    #[serde(default)]
    images: Vec<Value>,
    #[serde(default)]
    name_nouns: Option<Vec<String>>,
}

/// One human instruction for a product (`items_human_ins.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HumanInstruction {
    pub instruction: String,
    pub instruction_attributes: Vec<String>,
    #[serde(default)]
    pub instruction_options: Vec<String>,
}

/// A product after `load_products`' normalisation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub asin: String,
    /// `name` as in the file (the type reward compares names).
    pub name: String,
    pub category: String,
    /// Lower-cased and trimmed.
    pub query: String,
    pub product_category: String,
    /// `Title` (= `name`).
    pub title: String,
    /// `Description` (= `full_description`).
    pub description: String,
    /// `BulletPoints` (`small_description`, a list or one string).
    pub bullet_points: Vec<String>,
    /// `pricing`: one price or a `[low, high]` range.
    pub pricing: Vec<f64>,
    /// `Price`: `$12.99` or `$10.0 to $20.0` (Python float formatting).
    pub price_tag: String,
    /// Option groups in file order: lower-cased name → lower-cased values with `/` → ` | `.
    pub options: Vec<(String, Vec<String>)>,
    pub option_to_image: HashMap<String, Option<String>>,
    pub main_image: Option<String>,
    /// From the attributes file, `["DUMMY_ATTR"]` when absent.
    pub attributes: Vec<String>,
    /// Precomputed spaCy nouns of `name` (lower-cased), when the file has them.
    pub name_nouns: Option<Vec<String>>,
    pub instructions: Vec<HumanInstruction>,
}

/// A goal as `get_human_goals` builds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub asin: String,
    pub category: String,
    pub query: String,
    pub name: String,
    pub product_category: String,
    pub instruction_text: String,
    pub attributes: Vec<String>,
    pub price_upper: f64,
    pub goal_options: Vec<String>,
    #[serde(default)]
    pub name_nouns: Option<Vec<String>>,
}

/// Python's `repr(float)` for the prices WebShop prints (`100.0`, `12.99`).
pub fn py_float(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 { format!("{x:.1}") } else { format!("{x}") }
}

/// `float(Decimal(re.sub(r'[^\d.]', '', chunk)))` for each `$`-separated chunk of a pricing string.
fn parse_pricing(pricing: &str) -> Result<Vec<f64>, String> {
    pricing
        .split('$')
        .skip(1)
        .map(|chunk| {
            let digits: String = chunk.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
            digits.parse::<f64>().map_err(|_| format!("pricing {pricing:?}: cannot read a number from {chunk:?}"))
        })
        .collect()
}

fn normalize_product(raw: RawProduct, attributes: Option<&Vec<String>>) -> Result<Product, String> {
    let bullet_points = match raw.small_description {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(format!("small_description item {other} is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::String(s) => vec![s],
        other => return Err(format!("small_description {other} is neither a string nor a list")),
    };
    let (pricing, price_tag) = match raw.pricing.as_deref() {
        None | Some("") => (vec![100.0], "$100.0".to_string()),
        Some(p) => {
            let mut prices = parse_pricing(p)?;
            match prices.len() {
                0 => return Err(format!("pricing {p:?} has no $ amount")),
                1 => {
                    let tag = format!("${}", py_float(prices[0]));
                    (prices, tag)
                }
                _ => {
                    prices.truncate(2);
                    let tag = format!("${} to ${}", py_float(prices[0]), py_float(prices[1]));
                    (prices, tag)
                }
            }
        }
    };
    let mut options: Vec<(String, Vec<String>)> = Vec::new();
    let mut option_to_image = HashMap::new();
    for (name, contents) in raw.customization_options.map(|o| o.0).unwrap_or_default() {
        let Some(contents) = contents else { continue };
        let name = pyunicode::lower(&name);
        let values: Vec<String> = contents
            .into_iter()
            .map(|c| {
                let v = pyunicode::lower(&pyunicode::strip(&c.value).replace('/', " | "));
                option_to_image.insert(v.clone(), c.image);
                v
            })
            .collect();
        // A Python dict keeps the first position of a repeated key and the last value.
        match options.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = values,
            None => options.push((name, values)),
        }
    }
    let main_image = raw.images.first().and_then(|v| v.as_str().map(str::to_string));
    Ok(Product {
        asin: raw.asin,
        title: raw.name.clone(),
        name: raw.name,
        category: raw.category,
        query: pyunicode::strip(&pyunicode::lower(&raw.query)).to_string(),
        product_category: raw.product_category,
        description: raw.full_description,
        bullet_points,
        pricing,
        price_tag,
        options,
        option_to_image,
        main_image,
        attributes: attributes.cloned().unwrap_or_else(|| vec!["DUMMY_ATTR".to_string()]),
        name_nouns: raw.name_nouns.map(|n| n.iter().map(|s| pyunicode::lower(s)).collect()),
        instructions: Vec::new(),
    })
}

#[derive(Debug, Deserialize)]
struct RawAttrs {
    #[serde(default)]
    attributes: Option<Vec<String>>,
}

/// Products, their prices and the goals over them.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub products: Vec<Product>,
    index: HashMap<String, usize>,
    /// Sampled once per catalogue (`generate_product_prices`): ranges draw a uniform price.
    pub prices: HashMap<String, f64>,
    /// Human goals, shuffled with the catalogue seed.
    pub goals: Vec<Goal>,
}

fn read_text(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|e| DataError::Io { path: path.display().to_string(), reason: e.to_string() })
}

/// `PRICE_RANGE` of goal.py: 10, 20, ..., 990.
fn price_range() -> impl Iterator<Item = f64> {
    (1..100).map(|i| 10.0 * i as f64)
}

impl Catalogue {
    /// Reads the three files. `num_products` keeps the first N products (as WebShop's
    /// `num_products`); `seed` drives the price and `price_upper` draws and the goal shuffle.
    pub fn load(
        products: &Path,
        attributes: &Path,
        human_instructions: Option<&Path>,
        num_products: Option<usize>,
        seed: u64,
    ) -> Result<Self, DataError> {
        let human_text = human_instructions.map(read_text).transpose()?;
        Self::from_json_text(
            &read_text(products)?,
            &read_text(attributes)?,
            human_text.as_deref(),
            num_products,
            seed,
            &products.display().to_string(),
            &attributes.display().to_string(),
        )
    }

    /// As [`Catalogue::load`], from JSON texts (parsed directly, so option groups keep their
    /// file order); `products_name`/`attrs_name` label errors.
    pub fn from_json_text(
        products: &str,
        attributes: &str,
        human: Option<&str>,
        num_products: Option<usize>,
        seed: u64,
        products_name: &str,
        attrs_name: &str,
    ) -> Result<Self, DataError> {
        let schema = |path: &str, reason: String| DataError::Schema { path: path.to_string(), reason };
        let list: Vec<RawProduct> = serde_json::from_str(products)
            .map_err(|e| schema(products_name, format!("expected a list of products in WebShop's schema: {e}")))?;
        let attrs: HashMap<String, RawAttrs> = serde_json::from_str(attributes)
            .map_err(|e| schema(attrs_name, format!("expected {{asin: {{\"attributes\": [...]}}}}: {e}")))?;
        let human: HashMap<String, Vec<HumanInstruction>> = match human {
            Some(h) => serde_json::from_str(h)
                .map_err(|e| schema("human instructions", format!("expected {{asin: [instruction, ...]}}: {e}")))?,
            None => HashMap::new(),
        };
        let take = num_products.unwrap_or(list.len()).min(list.len());
        let mut out = Vec::new();
        let mut index = HashMap::new();
        for raw in list.into_iter().take(take) {
            if raw.asin == "nan" || raw.asin.chars().count() > 10 || index.contains_key(&raw.asin) {
                continue;
            }
            let asin = raw.asin.clone();
            let attr = attrs.get(&asin).and_then(|a| a.attributes.as_ref());
            let mut product =
                normalize_product(raw, attr).map_err(|e| schema(products_name, format!("product {asin}: {e}")))?;
            product.instructions = human.get(&asin).cloned().unwrap_or_default();
            index.insert(asin, out.len());
            out.push(product);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut prices = HashMap::new();
        for p in &out {
            let price = match p.pricing.as_slice() {
                [] => 100.0,
                [one] => *one,
                [lo, hi, ..] => lo + (hi - lo) * rng.random::<f64>(),
            };
            prices.insert(p.asin.clone(), price);
        }
        let mut goals = Vec::new();
        for p in &out {
            for ins in &p.instructions {
                if ins.instruction_attributes.is_empty() {
                    continue;
                }
                let range: Vec<f64> = price_range().filter(|&x| x > prices[&p.asin]).take(4).collect();
                let (price_upper, price_text) = if range.len() >= 2 {
                    let mut two: Vec<f64> = range.sample(&mut rng, 2).copied().collect();
                    two.sort_by(f64::total_cmp);
                    (two[1], format!(", and price lower than {:.2} dollars", two[1]))
                } else {
                    (1_000_000.0, String::new())
                };
                goals.push(Goal {
                    asin: p.asin.clone(),
                    category: p.category.clone(),
                    query: p.query.clone(),
                    name: p.name.clone(),
                    product_category: p.product_category.clone(),
                    instruction_text: format!("{}{price_text}", ins.instruction.trim_matches('.')),
                    attributes: ins.instruction_attributes.clone(),
                    price_upper,
                    goal_options: ins.instruction_options.clone(),
                    name_nouns: p.name_nouns.clone(),
                });
            }
        }
        goals.shuffle(&mut ChaCha8Rng::seed_from_u64(233));
        Ok(Catalogue { products: out, index, prices, goals })
    }

    /// The product with this ASIN (exact, then case-insensitive).
    pub fn product(&self, asin: &str) -> Option<&Product> {
        self.index
            .get(asin)
            .or_else(|| self.index.iter().find(|(k, _)| k.eq_ignore_ascii_case(asin)).map(|(_, i)| i))
            .map(|&i| &self.products[i])
    }

    /// Position of a product in [`Catalogue::products`].
    pub fn position(&self, asin: &str) -> Option<usize> {
        self.index.get(asin).copied()
    }

    /// The sampled price of a product.
    pub fn price(&self, asin: &str) -> f64 {
        self.prices.get(asin).copied().unwrap_or(100.0)
    }

    /// Replaces the sampled prices (e.g. with the ones a Python run drew).
    pub fn set_price(&mut self, asin: &str, price: f64) {
        self.prices.insert(asin.to_string(), price);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        assert_eq!(py_float(100.0), "100.0");
        assert_eq!(py_float(12.99), "12.99");
        assert_eq!(py_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(parse_pricing("$1,299.99").unwrap(), vec![1299.99]);
        assert_eq!(parse_pricing("$10.00 - $20.50").unwrap(), vec![10.0, 20.5]);
        assert!(parse_pricing("$abc").is_err());
    }
}
