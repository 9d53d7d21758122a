/**
 * The remote-link mode of the bench (`--link 20,80`): the same servers, reached through a
 * loopback latency proxy each (see latency-proxy.ts), so both clients see a tracking server and
 * a bucket a round trip away. Only the clients' addresses change; the servers still talk to
 * moto directly, as a server next to its bucket would.
 */
import { startLatencyProxy, type LatencyProxy } from './latency-proxy.js';
import type { BenchServers, MlflowServer } from './servers.js';

export interface Link {
  /** Round-trip time added, ms. */
  rttMs: number;
  /** Optional cap on each direction, bytes/s. */
  bandwidthBytesPerS?: number;
}

export interface LinkedServers {
  /** The servers as the clients see them through the link. */
  servers: BenchServers;
  /** Bytes each proxy carried, by server name. */
  proxies: Record<string, LatencyProxy>;
  close(): Promise<void>;
}

/** Human label, e.g. `20 ms RTT` or `80 ms RTT, 100 MB/s`. */
export function linkLabel(link: Link): string {
  return `${link.rttMs} ms RTT${link.bandwidthBytesPerS ? `, ${Math.round(link.bandwidthBytesPerS / 1e6)} MB/s` : ''}`;
}

/**
 * Starts one proxy per running server (and one for moto) and returns the servers with the
 * clients' URLs and `MLFLOW_S3_ENDPOINT_URL` pointing at them. Presigned part URLs of the
 * proxied multipart (mpu-1g) are signed by the server for moto's own address, so those part
 * PUTs do not cross the link, for either client.
 */
export async function linkServers(servers: BenchServers, link: Link): Promise<LinkedServers> {
  const proxies: Record<string, LatencyProxy> = {};
  const options = { rttMs: link.rttMs, ...(link.bandwidthBytesPerS ? { bandwidthBytesPerS: link.bandwidthBytesPerS } : {}) };
  try {
    const linked: BenchServers = { ...servers };
    let motoUrl: string | undefined;
    if (servers.moto) {
      proxies.moto = await startLatencyProxy(servers.moto.endpoint, options);
      motoUrl = proxies.moto.url;
    }
    for (const name of ['plain', 's3', 'direct'] as const) {
      const server = servers[name];
      if (!server) continue;
      proxies[name] = await startLatencyProxy(server.url, options);
      const env = { ...server.env };
      if (env.MLFLOW_S3_ENDPOINT_URL && motoUrl) env.MLFLOW_S3_ENDPOINT_URL = motoUrl;
      linked[name] = { ...server, url: proxies[name].url, env } satisfies MlflowServer;
    }
    return { servers: linked, proxies, close: () => closeAll(proxies) };
  } catch (error) {
    await closeAll(proxies);
    throw error;
  }
}

async function closeAll(proxies: Record<string, LatencyProxy>): Promise<void> {
  await Promise.all(Object.values(proxies).map((p) => p.close()));
}
