/**
 * Turning results into the table of docs/benchmarks.md (and the console): one row per check,
 * medians of both sides, the ratio with its spread, the target beside it, and "missed" where
 * it was missed.
 */
import type { BenchResults } from './main.js';
import type { Check, ScenarioResult } from './scenarios.js';

const secs = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const x = (n: number) => `${n.toFixed(2)}×`;

function checkRow(s: ScenarioResult, c: Check): string[] {
  if (c.kind === 'overhead') {
    const ours = s.sides.ours!;
    const base = s.sides[c.vs]!;
    const [oursValue, baseValue] = c.what === 'time' ? [secs(ours.medianMs), secs(base.medianMs)] : [`${ours.peakRssMiB ?? 'n/a'} MiB`, `${base.peakRssMiB ?? 'n/a'} MiB`];
    return [
      s.name,
      `${s.workload} (${c.what === 'time' ? 'wall time' : 'peak RSS'})`,
      oursValue,
      `${baseValue} (${c.vs})`,
      c.added === null ? 'n/a' : `+${c.added} ${c.unit} (median of per-round differences)`,
      `≤ +${c.limit} ${c.unit}`,
      c.met === null ? 'n/a' : c.met ? 'met' : '**missed**',
      ours.peakRssMiB === null ? 'n/a' : `${ours.peakRssMiB} MiB`,
    ];
  }
  if (c.kind === 'rss') {
    const peak = c.peakMiB === null ? 'n/a' : `${c.peakMiB} MiB`;
    const side = s.sides[c.side];
    return [s.name, `${s.workload} (${c.what})`, side ? secs(side.medianMs) : '', '', `peak RSS ${peak}`, `≤ ${c.limitMiB} MiB`, c.met === null ? 'n/a' : c.met ? 'met' : '**missed**', peak];
  }
  const ours = s.sides.ours!;
  const peer = s.sides[c.vs]!;
  return [
    s.name,
    s.workload,
    secs(ours.medianMs),
    `${secs(peer.medianMs)} (${c.vs})`,
    `${x(c.stats.median)} [${x(c.stats.min)}–${x(c.stats.max)}]`,
    `≥ ${x(c.target)}${c.note ? ` (${c.note})` : ''}`,
    c.met ? 'met' : '**missed**',
    ours.peakRssMiB === null ? 'n/a' : `${ours.peakRssMiB} MiB`,
  ];
}

export function renderTable(results: BenchResults): string {
  const header = ['scenario', 'workload', 'ours (median)', 'peer (median)', 'ratio peer/ours, median [min–max]', 'target', 'result', 'our peak RSS'];
  const rows: string[][] = [];
  for (const s of results.scenarios) {
    if (s.error) {
      rows.push([s.name, s.workload, '', '', `failed: ${s.error.split('\n')[0]!.slice(0, 120)}`, '', '**not run**', '']);
      continue;
    }
    for (const c of s.checks) rows.push(checkRow(s, c));
  }
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function renderMachine(results: BenchResults): string {
  const m = results.machine;
  return [
    `- Date: ${results.date} (${results.mode} run, ${results.rounds} rounds per comparison, sizes × ${results.scale})`,
    `- Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memGiB} GiB RAM, ${m.os}; load average at start ${m.loadAvg.join(' / ')}`,
    `- Versions: Node ${m.node}, Python ${m.python}, MLflow ${m.mlflow}, huggingface_hub ${m.huggingfaceHub}, boto3 ${m.boto3}, moto ${m.moto}, artifact-uploader ${m.package}`,
    `- Our API: ${m.ourApi}; peak RSS from ${m.rssSource}`,
    ...(results.mergedFrom
      ? [
          `- Put together by \`--report\` from ${results.mergedFrom.length} runs (a scenario comes whole from the last run that has it): ${results.mergedFrom
            .map((r) => `\`${r.file}\` (${r.date.slice(0, 16).replace('T', ' ')} UTC, ${r.only ? r.only.join(', ') : 'every scenario'}, load ${r.loadAvg.join(' / ')})`)
            .join('; ')}`,
        ]
      : []),
  ].join('\n');
}

/** Per-scenario detail: every side's samples (for the record and for spotting outliers). */
export function renderDetails(results: BenchResults): string {
  const out: string[] = [];
  for (const s of results.scenarios) {
    if (s.error) continue;
    const parts = Object.entries(s.sides).map(([key, side]) => {
      const mibs = s.bytes && !s.name.startsWith('rss-') ? `, ${((s.bytes / 1048576) / (side.medianMs / 1000)).toFixed(0)} MiB/s` : '';
      const cpu = side.medianCpuMs === null || side.medianCpuMs === undefined ? '' : `; CPU ${secs(side.medianCpuMs)}${s.bytes ? ` (${(side.medianCpuMs / 1000 / (s.bytes / 2 ** 30)).toFixed(2)} s/GiB)` : ''}`;
      const server =
        side.medianServerCpuMs === null || side.medianServerCpuMs === undefined
          ? ''
          : `; server CPU ${secs(side.medianServerCpuMs)}${s.bytes ? ` (${(side.medianServerCpuMs / 1000 / (s.bytes / 2 ** 30)).toFixed(2)} s/GiB)` : ''}`;
      // Older result files have no wake-ups.
      const wakeups = side.medianServerWakeups === null || side.medianServerWakeups === undefined ? '' : `, ${Math.round(side.medianServerWakeups)} server wake-ups`;
      return `${key} = ${side.label}: ${side.ms.map(secs).join(', ')} (median ${secs(side.medianMs)}${mibs}${cpu}${server}${wakeups}; peak RSS ${side.peakRssMiB ?? 'n/a'} MiB)`;
    });
    out.push(`- **${s.name}** (${s.server}): ${parts.join('; ')}${s.notes.length ? `. Note: ${s.notes.join('; ')}` : ''}`);
  }
  return out.join('\n');
}

/** Where the run's wall time went (console only). */
export function renderTiming(results: BenchResults): string {
  const t = results.timing;
  if (!t) return `run time: ${results.durationS} s\n`;
  const lines = [
    `run time: ${results.durationS} s`,
    `- start-up ${t.startupS} s, at once: servers ${t.serversS} s, build ${t.buildS} s, data and Python imports ${t.dataS} s`,
    `- Python imports: ${t.freshPeers ? 'in every measurement (--fresh-peers)' : `${t.peerImportsS.length} fork server${t.peerImportsS.length === 1 ? '' : 's'}, ${t.peerImportsS.join(' s, ')} s`}`,
  ];
  for (const s of results.scenarios) {
    lines.push(`- ${s.name}${s.link ? ` @ ${s.link.rttMs} ms RTT` : ''}: ${s.durationS ?? '?'} s${s.measuredS !== undefined ? ` (measured ${s.measuredS} s, the rest set-up, sync and bookkeeping)` : s.error ? ' (failed)' : ''}`);
  }
  lines.push(`- stopping the servers: ${t.stopS ?? '?'} s`);
  const accounted = t.startupS + (t.stopS ?? 0) + results.scenarios.reduce((sum, s) => sum + (s.durationS ?? 0), 0);
  lines.push(`- other (npm, bundling the bench, writing results): ${Math.max(0, Math.round((results.durationS - accounted) * 10) / 10)} s`);
  return `${lines.join('\n')}\n`;
}
