/**
 * The Python side's processes. By default one fork server (`peer.py --serve`) per import
 * profile and environment does the imports once and forks a child per measurement; with
 * `--fresh-peers` every measurement starts a fresh interpreter that imports everything again
 * (what the bench did before; the figures are the same, the run takes longer).
 */
import { PeerServer, runChild, type Measurement } from './measure.js';

export type PeerProfile = 'mlflow' | 'hub';

export class Peers {
  private readonly servers = new Map<string, PeerServer>();
  /** Milliseconds from starting a fork server to its imports being done, per server. */
  readonly importMs: number[] = [];

  constructor(
    private readonly python: string,
    private readonly script: string,
    private readonly cwd: string,
    private readonly fresh: boolean,
  ) {}

  private server(profile: PeerProfile, env: Record<string, string>): PeerServer {
    const key = `${profile} ${JSON.stringify(Object.entries(env).sort(([a], [b]) => a.localeCompare(b)))}`;
    let server = this.servers.get(key);
    if (!server) {
      const started = performance.now();
      server = new PeerServer(this.python, this.script, profile, { PYTHONUNBUFFERED: '1', ...env }, this.cwd);
      server.ready.then(() => this.importMs.push(performance.now() - started)).catch(() => {});
      this.servers.set(key, server);
    }
    return server;
  }

  /** Starts the fork server for these jobs (its imports) ahead of their first measurement. */
  warm(profile: PeerProfile, env: Record<string, string>): Promise<void> {
    return this.fresh ? Promise.resolve() : this.server(profile, env).ready;
  }

  run(profile: PeerProfile, env: Record<string, string>, job: Record<string, unknown>): Promise<Measurement> {
    if (this.fresh) return runChild(this.python, [this.script, JSON.stringify(job)], { env: { PYTHONUNBUFFERED: '1', ...env }, cwd: this.cwd });
    return this.server(profile, env).run(job);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
    this.servers.clear();
  }
}
