//! The shop's fixed product catalog: item ids `1..=CATALOG_SIZE`, their SKUs and prices.
//!
//! Fixed and computed, not stored, so every `catalog` backend serves the same items and
//! the load can pick valid ids and SKUs without asking first.

use serde::Serialize;

/// Number of items in the catalog (48); ids run from 1 to this.
pub const CATALOG_SIZE: u32 = 48;

const NAMES: [&str; 12] = [
    "Canvas tote",
    "Enamel mug",
    "Linen apron",
    "Wool socks",
    "Oak cutting board",
    "Brass bottle opener",
    "Cotton tea towel",
    "Ceramic bowl",
    "Leather notebook",
    "Glass carafe",
    "Cast-iron pan",
    "Beeswax candle",
];

/// One product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Catalog id, `1..=CATALOG_SIZE`.
    pub id: u32,
    /// Stock keeping unit, the cart's key: `sku-0007`.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Price in cents.
    pub price_cents: u32,
}

/// The SKU of item `id`: `sku-0007`.
pub fn sku_for(id: u32) -> String {
    format!("sku-{id:04}")
}

/// Item `id`, or `None` outside `1..=CATALOG_SIZE`.
pub fn item(id: u32) -> Option<Item> {
    if !(1..=CATALOG_SIZE).contains(&id) {
        return None;
    }
    let name = NAMES[(id as usize - 1) % NAMES.len()];
    let edition = (id - 1) / NAMES.len() as u32 + 1;
    Some(Item {
        id,
        sku: sku_for(id),
        name: format!("{name}, series {edition}"),
        price_cents: 500 + (id * 379) % 4_500,
    })
}

/// Every item, in id order.
pub fn all_items() -> Vec<Item> {
    (1..=CATALOG_SIZE).filter_map(item).collect()
}

/// Whether `sku` names a catalog item.
pub fn is_known_sku(sku: &str) -> bool {
    sku.strip_prefix("sku-")
        .filter(|digits| digits.len() == 4)
        .and_then(|digits| digits.parse::<u32>().ok())
        .is_some_and(|id| (1..=CATALOG_SIZE).contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_has_a_known_sku() {
        let items = all_items();
        assert_eq!(items.len(), CATALOG_SIZE as usize);
        for item in items {
            assert!(is_known_sku(&item.sku), "{}", item.sku);
        }
        assert!(item(0).is_none());
        assert!(item(CATALOG_SIZE + 1).is_none());
        assert!(!is_known_sku("sku-0000"));
        assert!(!is_known_sku("sku-7"));
        assert!(!is_known_sku("apple"));
    }
}
