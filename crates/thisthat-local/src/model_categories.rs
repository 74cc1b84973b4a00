//! The broader categories [`ModelClassifier`](crate::ModelClassifier) derives from ImageNet's
//! 1,000 classes: a short, hand-written table of words people use (`cat`, `dog`, `food`, …),
//! each with the ImageNet classes (indexes into `model/classes.txt`) that are honestly one of
//! them. A category's confidence is the sum of its classes' probabilities, so a photo the model
//! splits between `tiger cat`, `Egyptian cat` and `tabby` is confidently a `cat`.
//!
//! ImageNet orders its classes by WordNet, so most categories are ranges. The boundaries were
//! checked against `classes.txt` (the unit tests below pin every range's first and last class
//! by name). Classes are left out where the word would be a guess: the wild canids (269–280:
//! wolves, foxes, the hyena) are not `dog`, the wild felids (286–293: cougar to cheetah) are not
//! `cat`, and `Madagascar cat` (383) is a lemur.

use std::ops::RangeInclusive;

/// One category: its name and the ImageNet classes it covers.
pub(crate) struct CategoryRule {
    /// The category's name, lower case.
    pub(crate) name: &'static str,
    /// The ImageNet class indexes it covers (a single class is `i..=i`).
    pub(crate) classes: &'static [RangeInclusive<usize>],
}

const fn rule(name: &'static str, classes: &'static [RangeInclusive<usize>]) -> CategoryRule {
    CategoryRule { name, classes }
}

/// The table. Keep it short and obvious: every entry must be something a person would agree
/// with on seeing the class's photos.
pub(crate) const CATEGORIES: &[CategoryRule] = &[
    // 0–397 are animals; 398–999 are objects, food, scenes, plants and people.
    rule("animal", &[0..=397]),
    // 0–6 tench … stingray; 389–397 barracouta … puffer.
    rule("fish", &[0..=6, 389..=397]),
    // 7–24 cock … great grey owl; 80–100 black grouse … black swan; 127–146 white stork …
    // albatross. (69–79 and 107–126 between them are invertebrates, 101–106 mammals.)
    rule("bird", &[7..=24, 80..=100, 127..=146]),
    // 151–268 Chihuahua … Mexican hairless: the domestic dog breeds.
    rule("dog", &[151..=268]),
    // 281–285 tabby, tiger cat, Persian cat, Siamese cat, Egyptian cat: the domestic cats.
    rule("cat", &[281..=285]),
    // 294–297 brown bear … sloth bear; 388 giant panda.
    rule("bear", &[294..=297, 388..=388]),
    // 300–326 tiger beetle … lycaenid (beetles, flies, bees, ants, butterflies and so on).
    rule("insect", &[300..=326]),
    // 339 sorrel, ImageNet's only horse.
    rule("horse", &[339..=339]),
    // 370–382 guenon … squirrel monkey (365–369 are apes, 383–384 lemurs).
    rule("monkey", &[370..=382]),
    // 985 daisy, 986 yellow lady's slipper (an orchid).
    rule("flower", &[985..=986]),
    // Dishes, baked goods, vegetables, fruit: 924 guacamole … 957 pomegranate (not 958 hay),
    // 959 carbonara … 965 burrito, and 987 corn, 998 ear (of corn).
    rule("food", &[924..=957, 959..=965, 987..=987, 998..=998]),
    // 936 head cabbage … 946 cardoon.
    rule("vegetable", &[936..=946]),
    // 948 Granny Smith … 957 pomegranate.
    rule("fruit", &[948..=957]),
    // 441 beer glass, 966 red wine, 967 espresso, 968 cup (in ImageNet a drink served in a
    // cup), 969 eggnog. Empty bottles and mugs are not drinks.
    rule("drink", &[441..=441, 966..=969]),
    // 967 espresso, 504 coffee mug.
    rule("coffee", &[504..=504, 967..=967]),
    // 657 missile, which WordNet files under rocket. Not 744 projectile (WordNet: "not
    // self-propelled") nor 812 space shuttle (a spacecraft).
    rule("rocket", &[657..=657]),
    // Everything that carries people or goods: cars, trucks, buses, trains, boats, aircraft,
    // bicycles, carts, sleds and tanks.
    rule(
        "vehicle",
        &[
            403..=405, // aircraft carrier, airliner, airship
            407..=408, // ambulance, amphibian (amphibious vehicle)
            436..=436, // beach wagon
            444..=444, // bicycle-built-for-two
            450..=450, // bobsled
            466..=466, // bullet train
            468..=468, // cab
            472..=472, // canoe
            484..=484, // catamaran
            510..=511, // container ship, convertible
            537..=537, // dogsled
            547..=547, // electric locomotive
            554..=555, // fireboat, fire engine
            561..=561, // forklift
            565..=565, // freight car
            569..=569, // garbage truck
            573..=573, // go-kart
            575..=576, // golfcart, gondola
            586..=586, // half track
            595..=595, // harvester
            603..=603, // horse cart
            609..=609, // jeep
            612..=612, // jinrikisha
            625..=625, // lifeboat
            627..=628, // limousine, liner
            654..=654, // minibus
            656..=656, // minivan
            661..=661, // Model T
            665..=665, // moped
            670..=671, // motor scooter, mountain bike
            675..=675, // moving van
            690..=690, // oxcart
            705..=705, // passenger car (of a train)
            717..=717, // pickup
            734..=734, // police van
            751..=751, // racer (a racing car)
            757..=757, // recreational vehicle
            779..=780, // school bus, schooner
            802..=803, // snowmobile, snowplow
            812..=812, // space shuttle
            814..=814, // speedboat
            817..=817, // sports car
            820..=820, // steam locomotive
            829..=829, // streetcar
            833..=833, // submarine
            847..=847, // tank
            856..=856, // thresher
            864..=864, // tow truck
            866..=867, // tractor, trailer truck
            870..=871, // tricycle, trimaran
            874..=874, // trolleybus
            880..=880, // unicycle
            895..=895, // warplane
            908..=908, // wing (of an airliner)
            914..=914, // yawl
        ],
    ),
    // Passenger cars (not vans, buses or trucks).
    rule(
        "car",
        &[
            436..=436, // beach wagon
            468..=468, // cab
            511..=511, // convertible
            609..=609, // jeep
            627..=627, // limousine
            656..=656, // minivan
            661..=661, // Model T
            751..=751, // racer
            817..=817, // sports car
        ],
    ),
    rule(
        "truck",
        &[
            555..=555, // fire engine
            569..=569, // garbage truck
            675..=675, // moving van
            717..=717, // pickup
            864..=864, // tow truck
            867..=867, // trailer truck
        ],
    ),
    rule(
        "bus",
        &[
            654..=654, // minibus
            779..=779, // school bus
            874..=874, // trolleybus
        ],
    ),
    rule(
        "train",
        &[
            466..=466, // bullet train
            547..=547, // electric locomotive
            565..=565, // freight car
            705..=705, // passenger car
            820..=820, // steam locomotive
        ],
    ),
    rule(
        "boat",
        &[
            403..=403, // aircraft carrier
            472..=472, // canoe
            484..=484, // catamaran
            510..=510, // container ship
            554..=554, // fireboat
            576..=576, // gondola
            625..=625, // lifeboat
            628..=628, // liner
            780..=780, // schooner
            814..=814, // speedboat
            833..=833, // submarine
            871..=871, // trimaran
            914..=914, // yawl
        ],
    ),
    rule(
        "airplane",
        &[
            404..=404, // airliner
            895..=895, // warplane
            908..=908, // wing (of an airliner)
        ],
    ),
    rule(
        "bicycle",
        &[
            444..=444, // bicycle-built-for-two
            671..=671, // mountain bike
        ],
    ),
];

/// Each category's confidence: the sum of its classes' probabilities, capped at 1.0. Returns
/// `(name, confidence)` for every category, in table order.
pub(crate) fn category_confidences(probabilities: &[f32]) -> impl Iterator<Item = (&'static str, f32)> + '_ {
    CATEGORIES.iter().map(move |rule| {
        let sum: f32 = rule
            .classes
            .iter()
            .flat_map(|range| range.clone())
            .filter_map(|i| probabilities.get(i))
            .filter(|p| p.is_finite())
            .sum();
        (rule.name, sum.clamp(0.0, 1.0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSES: &str = include_str!("../model/classes.txt");

    fn classes() -> Vec<&'static str> {
        CLASSES.lines().collect()
    }

    #[test]
    fn every_range_is_inside_the_1000_classes_and_categories_are_unique() {
        let mut names: Vec<_> = CATEGORIES.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATEGORIES.len(), "a category appears twice");
        for rule in CATEGORIES {
            assert_eq!(rule.name, rule.name.to_lowercase());
            for range in rule.classes {
                assert!(
                    range.start() <= range.end() && *range.end() < 1000,
                    "{}: {range:?}",
                    rule.name
                );
            }
        }
    }

    #[test]
    fn the_boundaries_are_the_classes_they_claim() {
        let classes = classes();
        assert_eq!(classes.len(), 1000);
        // (index, class) at both ends of every range of the animal categories, and the
        // neighbours that must stay outside.
        for (i, name) in [
            (0, "tench"),
            (6, "stingray"),
            (7, "cock"),
            (24, "great grey owl"),
            (25, "European fire salamander"),
            (79, "centipede"),
            (80, "black grouse"),
            (100, "black swan"),
            (101, "tusker"),
            (126, "isopod"),
            (127, "white stork"),
            (146, "albatross"),
            (147, "grey whale"),
            (150, "sea lion"),
            (151, "Chihuahua"),
            (268, "Mexican hairless"),
            (269, "timber wolf"),
            (280, "grey fox"),
            (281, "tabby"),
            (285, "Egyptian cat"),
            (286, "cougar"),
            (293, "cheetah"),
            (294, "brown bear"),
            (297, "sloth bear"),
            (300, "tiger beetle"),
            (326, "lycaenid"),
            (327, "starfish"),
            (339, "sorrel"),
            (369, "siamang"),
            (370, "guenon"),
            (382, "squirrel monkey"),
            (383, "Madagascar cat"),
            (388, "giant panda"),
            (389, "barracouta"),
            (397, "puffer"),
            (398, "abacus"),
        ] {
            assert_eq!(classes[i], name, "class {i}");
        }
    }

    #[test]
    fn the_single_classes_are_the_ones_named_in_the_comments() {
        let classes = classes();
        for (i, name) in [
            (441, "beer glass"),
            (504, "coffee mug"),
            (657, "missile"),
            (744, "projectile"),
            (812, "space shuttle"),
            (924, "guacamole"),
            (936, "head cabbage"),
            (946, "cardoon"),
            (947, "mushroom"),
            (948, "Granny Smith"),
            (957, "pomegranate"),
            (958, "hay"),
            (959, "carbonara"),
            (965, "burrito"),
            (966, "red wine"),
            (967, "espresso"),
            (968, "cup"),
            (969, "eggnog"),
            (985, "daisy"),
            (986, "yellow lady's slipper"),
            (987, "corn"),
            (998, "ear"),
        ] {
            assert_eq!(classes[i], name, "class {i}");
        }
        let vehicles: Vec<&str> = CATEGORIES
            .iter()
            .find(|r| r.name == "vehicle")
            .into_iter()
            .flat_map(|r| r.classes.iter().flat_map(|range| range.clone()))
            .map(|i| classes[i])
            .collect();
        for expected in [
            "airliner",
            "garbage truck",
            "school bus",
            "sports car",
            "space shuttle",
            "steam locomotive",
            "yawl",
        ] {
            assert!(vehicles.contains(&expected), "{expected}");
        }
        // Every narrower means-of-transport category is inside `vehicle`.
        for narrower in ["car", "truck", "bus", "train", "boat", "airplane", "bicycle"] {
            let rule = CATEGORIES.iter().find(|r| r.name == narrower).expect(narrower);
            for i in rule.classes.iter().flat_map(|range| range.clone()) {
                assert!(vehicles.contains(&classes[i]), "{narrower}: {}", classes[i]);
            }
        }
    }

    #[test]
    fn confidences_are_sums_capped_at_one() {
        let mut p = vec![0.0f32; 1000];
        p[281] = 0.2;
        p[282] = 0.4;
        p[285] = 0.3;
        p[286] = 0.1; // a cougar is not a cat
        let all: Vec<_> = category_confidences(&p).collect();
        let get = |name: &str| all.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).expect(name);
        assert!((get("cat") - 0.9).abs() < 1e-6);
        assert!((get("animal") - 1.0).abs() < 1e-6);
        assert_eq!(get("food"), 0.0);
        let over = vec![0.01f32; 1000];
        let all: Vec<_> = category_confidences(&over).collect();
        assert!(all.iter().all(|(_, c)| (0.0..=1.0).contains(c)));
    }
}
