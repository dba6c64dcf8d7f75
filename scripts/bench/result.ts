/** One benchmark figure: our rate, the peer's rate measured in the same run, and ours over the peer's. */
export interface BenchResult {
  name: string;
  ours: number;
  peer: number;
  ratio: number;
  /** Unit of `ours` and `peer`, such as `prompts/s` or `events/s`. */
  unit: string;
  details: Record<string, unknown>;
}
