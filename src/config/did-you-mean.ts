/**
 * "Did you mean" suggestions for misspelt keys, stage names and env vars.
 *
 * @module
 */

/** `onnx_model`, `ONNX-Model` and `onnxModel` all normalise to `onnxmodel`. */
function normalise(name: string): string {
  return name.toLowerCase().replace(/[-_\s]/g, '');
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions (`enabeld`). */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate closest to `input`, or `undefined` when none is close enough to be a likely
 * typo. Case, `_` and `-` differences count as equal, so `artifact_path` suggests
 * `artifactPath`.
 *
 * @example
 * ```ts
 * closestMatch('chekpoint', ['checkpoint', 'metrics']); // 'checkpoint'
 * closestMatch('weights', ['checkpoint', 'metrics']);   // undefined
 * ```
 */
export function closestMatch(input: string, candidates: readonly string[]): string | undefined {
  const wanted = normalise(input);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(wanted, normalise(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // One edit per three characters, at least one: close enough to be a typo, far enough that
  // `weights` does not suggest `results`.
  return bestDistance <= Math.max(1, Math.floor(wanted.length / 3)) ? best : undefined;
}
