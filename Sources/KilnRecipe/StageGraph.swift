/// The DAG over a recipe's stages: stage `a` depends on stage `b` when one of `a`'s inputs reads one of
/// `b`'s outputs (the same path, a file in an output folder, a folder holding an output, or a glob
/// matching it). Indices refer to `Recipe.stages`.
public struct StageGraph: Hashable, Sendable {
    /// For each stage, the stages it needs directly, ascending.
    public var dependencies: [[Int]]
    /// For each stage, the stages that need it directly, ascending.
    public var dependents: [[Int]]

    /// A graph from each stage's direct dependencies (duplicates dropped, sorted).
    public init(dependencies: [[Int]]) {
        self.dependencies = dependencies.map { Array(Set($0)).sorted() }
        var dependents = [[Int]](repeating: [], count: dependencies.count)
        for (stage, needs) in self.dependencies.enumerated() {
            for need in needs { dependents[need].append(stage) }
        }
        self.dependents = dependents
    }

    /// Every stage, each after all it depends on; among stages ready at once, the one declared first
    /// (so the order is stable across runs and machines). Nil if the graph has a cycle.
    public func topologicalOrder() -> [Int]? { order(of: Array(dependencies.indices)) }

    /// The given stages in dependency order (the set must be closed under dependencies).
    func order(of subset: [Int]) -> [Int]? {
        let members = Set(subset)
        var remaining = [Int](repeating: 0, count: dependencies.count)
        for stage in members { remaining[stage] = dependencies[stage].count(where: { members.contains($0) }) }
        var ready = MinHeap(subset.filter { remaining[$0] == 0 })
        var result: [Int] = []
        result.reserveCapacity(subset.count)
        while let stage = ready.pop() {
            result.append(stage)
            for dependent in dependents[stage] where members.contains(dependent) {
                remaining[dependent] -= 1
                if remaining[dependent] == 0 { ready.push(dependent) }
            }
        }
        return result.count == members.count ? result : nil
    }

    /// `stages` plus everything they need, transitively, in topological order.
    public func closure(of stages: [Int]) -> [Int] {
        var seen = Set<Int>()
        var stack = stages
        while let stage = stack.popLast() {
            guard seen.insert(stage).inserted else { continue }
            stack.append(contentsOf: dependencies[stage])
        }
        return order(of: seen.sorted()) ?? seen.sorted()
    }

    /// The cycles: for each strongly connected component of more than one stage (or a stage needing
    /// itself), one cycle through it, starting and ending at its first-declared stage.
    public func cycles() -> [[Int]] {
        var cycles: [[Int]] = []
        for component in stronglyConnectedComponents() {
            let start = component.min()!
            if component.count == 1 && !dependencies[start].contains(start) { continue }
            // Breadth-first from start's dependencies back to start, inside the component.
            let inside = Set(component)
            var previous: [Int: Int] = [:]
            var queue = [start]
            var head = 0
            var found = false
            while head < queue.count, !found {
                let stage = queue[head]
                head += 1
                for next in dependencies[stage] where inside.contains(next) {
                    if next == start { previous[start] = stage; found = true; break }
                    if previous[next] == nil { previous[next] = stage; queue.append(next) }
                }
            }
            // Walk back: start → … (each needs the next) → start.
            var cycle = [start]
            var stage = previous[start]!
            while stage != start {
                cycle.append(stage)
                stage = previous[stage]!
            }
            cycle.append(start)
            cycles.append(Array(cycle.reversed()))
        }
        return cycles.sorted { $0[0] < $1[0] }
    }

    /// Tarjan's algorithm, iterative (a 10,000-stage chain must not overflow the stack).
    private func stronglyConnectedComponents() -> [[Int]] {
        let n = dependencies.count
        var index = [Int](repeating: -1, count: n), low = [Int](repeating: 0, count: n)
        var onStack = [Bool](repeating: false, count: n)
        var stack: [Int] = []
        var components: [[Int]] = []
        var counter = 0
        for root in 0..<n where index[root] == -1 {
            var work: [(node: Int, edge: Int)] = [(root, 0)]
            index[root] = counter; low[root] = counter; counter += 1
            stack.append(root); onStack[root] = true
            while let (node, edge) = work.last {
                if edge < dependencies[node].count {
                    work[work.count - 1].edge += 1
                    let next = dependencies[node][edge]
                    if index[next] == -1 {
                        index[next] = counter; low[next] = counter; counter += 1
                        stack.append(next); onStack[next] = true
                        work.append((next, 0))
                    } else if onStack[next] {
                        low[node] = min(low[node], index[next])
                    }
                    continue
                }
                work.removeLast()
                if let parent = work.last { low[parent.node] = min(low[parent.node], low[node]) }
                if low[node] == index[node] {
                    var component: [Int] = []
                    while true {
                        let member = stack.removeLast()
                        onStack[member] = false
                        component.append(member)
                        if member == node { break }
                    }
                    components.append(component)
                }
            }
        }
        return components
    }
}

/// A binary min-heap of stage indices, for the stable topological order.
struct MinHeap {
    private var items: [Int]

    init(_ items: [Int]) {
        self.items = []
        for item in items { push(item) }
    }

    mutating func push(_ item: Int) {
        items.append(item)
        var i = items.count - 1
        while i > 0, items[(i - 1) / 2] > items[i] {
            items.swapAt(i, (i - 1) / 2)
            i = (i - 1) / 2
        }
    }

    mutating func pop() -> Int? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < items.count, items[l] < items[smallest] { smallest = l }
            if r < items.count, items[r] < items[smallest] { smallest = r }
            if smallest == i { break }
            items.swapAt(i, smallest)
            i = smallest
        }
        return top
    }
}
