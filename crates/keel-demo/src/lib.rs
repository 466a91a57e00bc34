//! The game day: a simulated shop behind Keel, a shopper load, and the March-15 incident replayed as scenes.
