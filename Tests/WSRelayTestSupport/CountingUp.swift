/// 1, 2, …, `n`; empty when `n` < 1.
///
/// For comparing a sequence number list with the continuous one: `Array(1...n)` traps when a failed wait
/// left `n` at 0, and a trap takes the whole test process down (every other test's result with it).
public func countingUp<Number: FixedWidthInteger>(to n: Number) -> [Number] where Number.Stride: SignedInteger {
    n < 1 ? [] : Array(1...n)
}
