//! The stages of a pipeline as a graph of `needs`: the one place that orders stages, finds
//! their cycles and what each stage needs, for the checks and for planning alike.

use std::collections::BTreeSet;

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::pipeline::Stage;

/// Stage `i` needs stage `k`, named as its `j`-th need, when there is an edge `k → i`
/// weighted `j`.
#[derive(Debug)]
pub struct StageGraph {
    graph: DiGraph<usize, usize>,
    /// Needs that name no stage: (stage, position in its `needs`).
    pub unknown: Vec<(usize, usize)>,
}

impl StageGraph {
    pub fn of(stages: &[Stage]) -> StageGraph {
        let mut graph = DiGraph::<usize, usize>::new();
        let nodes: Vec<_> = (0..stages.len()).map(|i| graph.add_node(i)).collect();
        let mut unknown = Vec::new();
        for (i, stage) in stages.iter().enumerate() {
            for (j, need) in stage.needs.iter().enumerate() {
                match stages.iter().position(|s| &s.name == need) {
                    Some(k) => {
                        graph.add_edge(nodes[k], nodes[i], j);
                    }
                    None => unknown.push((i, j)),
                }
            }
        }
        StageGraph { graph, unknown }
    }

    /// Every cycle among the stages, each as the stages on it in the order their `needs`
    /// go, starting from its lowest index.
    pub fn cycles(&self, stages: &[Stage]) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        for component in tarjan_scc(&self.graph) {
            let self_loop = self.graph.contains_edge(component[0], component[0]);
            if component.len() < 2 && !self_loop {
                continue;
            }
            let members: BTreeSet<usize> = component.iter().map(|n| self.graph[*n]).collect();
            let first = *members.first().expect("components are not empty");
            let mut path = vec![first];
            let mut current = first;
            // Walk the `needs` of each stage inside the cycle until we are back at the start.
            loop {
                let next = stages[current]
                    .needs
                    .iter()
                    .filter_map(|n| stages.iter().position(|s| &s.name == n))
                    .find(|k| members.contains(k) && (*k == first || !path.contains(k)));
                match next {
                    Some(k) if k == first => break,
                    Some(k) => {
                        path.push(k);
                        current = k;
                    }
                    None => break,
                }
            }
            out.push(path);
        }
        out.sort();
        out
    }

    /// Stages in an order where every stage comes after those it needs, and otherwise in
    /// file order (so a plan reads like its pipeline); `Err` names a stage on a cycle.
    pub fn order(&self) -> Result<Vec<usize>, usize> {
        let count = self.graph.node_count();
        let mut placed = vec![false; count];
        let mut order = Vec::with_capacity(count);
        while order.len() < count {
            let ready = (0..count).find(|&i| {
                !placed[i]
                    && self
                        .graph
                        .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                        .all(|k| placed[self.graph[k]])
            });
            match ready {
                Some(i) => {
                    placed[i] = true;
                    order.push(i);
                }
                None => return Err((0..count).find(|&i| !placed[i]).expect("a stage is left")),
            }
        }
        Ok(order)
    }

    /// For every stage, the stages it needs directly or through others.
    pub fn ancestors(&self) -> Vec<BTreeSet<usize>> {
        (0..self.graph.node_count())
            .map(|i| {
                let mut seen = BTreeSet::new();
                let mut stack = vec![NodeIndex::new(i)];
                while let Some(node) = stack.pop() {
                    for parent in self.graph.neighbors_directed(node, Direction::Incoming) {
                        if seen.insert(self.graph[parent]) {
                            stack.push(parent);
                        }
                    }
                }
                seen
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(needs: &[(&str, &[&str])]) -> Vec<Stage> {
        needs
            .iter()
            .map(|(name, needs)| {
                serde_json::from_value(serde_json::json!({
                    "name": name,
                    "agents": ["oracle"],
                    "needs": needs,
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn stages_run_after_what_they_need_and_otherwise_in_file_order() {
        let stages = stages(&[("eval", &["sanity"]), ("sanity", &[]), ("other", &[])]);
        let graph = StageGraph::of(&stages);
        assert_eq!(graph.order(), Ok(vec![1, 0, 2]));
        assert!(graph.cycles(&stages).is_empty());
        assert_eq!(graph.ancestors()[0], BTreeSet::from([1]));
    }

    #[test]
    fn a_cycle_is_found_in_the_order_its_needs_go() {
        let stages = stages(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &["d"])]);
        let graph = StageGraph::of(&stages);
        assert_eq!(graph.cycles(&stages), vec![vec![0, 2, 1], vec![3]]);
        assert!(graph.order().is_err());
    }

    #[test]
    fn a_need_that_names_no_stage_is_reported_with_its_place() {
        let stages = stages(&[("a", &["b", "nope"]), ("b", &[])]);
        assert_eq!(StageGraph::of(&stages).unknown, vec![(0, 1)]);
    }
}
