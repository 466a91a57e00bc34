//! Blast radius: replay sampled request shapes through two routing tables and report the movement.
