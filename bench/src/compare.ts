/**
 * Running the sides of a scenario against each other: the order rotates per round (so no
 * side always runs on a warmer server or page cache), dirty pages are flushed before each
 * measurement, then medians and per-round ratios (peer time / our time) with their spread.
 */
import { execFileSync } from 'node:child_process';
import type { Measurement } from './measure.js';

/** Flushes dirty pages (`sync`), so no measurement pays for an earlier one's writeback. */
export function settle(): void {
  try {
    execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // No sync(1): measurements are a little noisier, nothing worse.
  }
}

export interface Side {
  /** `ours`, `python`, `curl`, `tar`... */
  key: string;
  /** What it is, for the table (e.g. "MlflowClient().log_artifact"). */
  label: string;
  /** One measurement; `round` lets it pick fresh runs / repos. */
  run(round: number): Promise<Measurement>;
}

export interface SideResult {
  label: string;
  ms: number[];
  medianMs: number;
  rssMiB: Array<number | null>;
  /** CPU time (user + system) of each round, ms; null where nothing measured it. */
  cpuMs: Array<number | null>;
  /** Median of `cpuMs` over the rounds that have one. */
  medianCpuMs: number | null;
  /** The servers' CPU time during each round, ms; null where it was not measured. */
  serverCpuMs: Array<number | null>;
  /** Median of `serverCpuMs` over the rounds that have one. */
  medianServerCpuMs: number | null;
  /** The servers' threads' voluntary context switches during each round; null where not measured. */
  serverWakeups?: Array<number | null>;
  /** Median of `serverWakeups` over the rounds that have one. */
  medianServerWakeups?: number | null;
  /** Highest peak RSS over the rounds, MiB. */
  peakRssMiB: number | null;
  /** What the last round's child reported (API used, attempts, multipart...). */
  details: Record<string, unknown>;
}

export interface RatioStats {
  median: number;
  min: number;
  max: number;
  perRound: number[];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const toMiB = (kib: number | undefined) => (kib === undefined ? null : Math.round((kib / 1024) * 10) / 10);

/** Options of {@link compareSides}. */
export interface CompareOptions {
  /**
   * One unmeasured run of the side that goes last in round 1, before round 1. For servers whose
   * first big upload is slow whoever sends it (moto: round 1's first side took 11.7–12.8 s
   * against 7.8–9.4 s later, and the rotation always puts the same side first in round 1).
   * @default false
   */
  warmUp?: boolean;
}

export async function compareSides(sides: readonly Side[], rounds: number, log: (line: string) => void, options: CompareOptions = {}): Promise<Record<string, SideResult>> {
  const out: Record<string, SideResult> = {};
  if (options.warmUp && sides.length > 0) {
    const side = sides[sides.length - 1]!;
    settle();
    const m = await side.run(0);
    log(`  warm-up ${side.key.padEnd(7)} ${(m.ms / 1000).toFixed(2).padStart(7)} s  (not counted)`);
  }
  for (const side of sides) out[side.key] = { label: side.label, ms: [], medianMs: 0, rssMiB: [], peakRssMiB: null, cpuMs: [], medianCpuMs: null, serverCpuMs: [], medianServerCpuMs: null, serverWakeups: [], medianServerWakeups: null, details: {} };
  for (let round = 0; round < rounds; round++) {
    // Rotate, so each side goes first (right after the previous round's writes) equally often.
    const order = sides.map((_, i) => sides[(i + round) % sides.length]!);
    for (const side of order) {
      // Flush the previous measurement's writes, so nobody pays for someone else's writeback.
      settle();
      const m = await side.run(round);
      const result = out[side.key]!;
      result.ms.push(m.ms);
      result.rssMiB.push(toMiB(m.maxRssKiB));
      result.cpuMs.push(m.cpuMs ?? null);
      result.serverCpuMs.push(m.serverCpuMs ?? null);
      result.serverWakeups!.push(m.serverWakeups ?? null);
      result.details = m.details;
      log(`  round ${round + 1}/${rounds} ${side.key.padEnd(7)} ${(m.ms / 1000).toFixed(2).padStart(7)} s  rss ${toMiB(m.maxRssKiB) ?? '?'} MiB`);
    }
  }
  for (const result of Object.values(out)) {
    result.medianMs = median(result.ms);
    const rss = result.rssMiB.filter((v): v is number => v !== null);
    result.peakRssMiB = rss.length > 0 ? Math.max(...rss) : null;
    const cpu = result.cpuMs.filter((v): v is number => v !== null);
    result.medianCpuMs = cpu.length > 0 ? median(cpu) : null;
    const serverCpu = result.serverCpuMs.filter((v): v is number => v !== null);
    result.medianServerCpuMs = serverCpu.length > 0 ? median(serverCpu) : null;
    const wakeups = result.serverWakeups!.filter((v): v is number => v !== null);
    result.medianServerWakeups = wakeups.length > 0 ? median(wakeups) : null;
  }
  return out;
}

/** Per-round `peer / ours`, and their median and range. */
export function ratio(results: Record<string, SideResult>, peer: string, ours = 'ours'): RatioStats {
  const a = results[peer]!.ms;
  const b = results[ours]!.ms;
  const perRound = a.map((ms, i) => ms / b[i]!);
  return { median: median(perRound), min: Math.min(...perRound), max: Math.max(...perRound), perRound };
}
