//! What the durability probe reports besides its runs: the state of the whole set.

/// How many objects of a target's durability set are present, lost and corrupt, as last
/// counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurabilityCount {
    pub present: u32,
    pub lost: u32,
    pub corrupt: u32,
}
