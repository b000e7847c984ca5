//! Batches split by length: one padded inference pays for its longest row, so a batch of 31
//! short messages and one long one would cost 32 long ones. Rows are sorted by length, cut
//! into sub-batches of one length bucket each (at most `MAX_SUB_BATCH` rows), and their
//! results go back to input order.

use super::engine::bucket_of;

/// Rows per sub-batch: enough to amortise a plan run, few enough to keep its activations small.
pub const MAX_SUB_BATCH: usize = 32;

/// Input indices grouped into sub-batches, shortest first; every index appears exactly once.
pub fn sub_batches(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current_bucket = None;
    for i in order {
        let bucket = bucket_of(lengths[i]);
        match groups.last_mut() {
            Some(group) if current_bucket == Some(bucket) && group.len() < MAX_SUB_BATCH => {
                group.push(i)
            }
            _ => {
                groups.push(vec![i]);
                current_bucket = Some(bucket);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_lands_in_exactly_one_sub_batch_of_one_bucket() {
        let lengths: Vec<usize> = (0..100).map(|i| (i * 37) % 130 + 3).collect();
        let groups = sub_batches(&lengths);
        let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        for group in &groups {
            assert!(group.len() <= MAX_SUB_BATCH);
            let first = bucket_of(lengths[group[0]]);
            assert!(group.iter().all(|&i| bucket_of(lengths[i]) == first));
        }
    }

    #[test]
    fn one_length_fills_sub_batches_up_to_the_cap() {
        let groups = sub_batches(&[10; 70]);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [32, 32, 6]);
    }
}
