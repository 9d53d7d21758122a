/**
 * The remote-link mode of the bench (`--link 20,80`): the same servers, reached through a
 * loopback latency proxy each (see latency-proxy.ts), so both clients see a tracking server and
 * a bucket a round trip away. Only the clients' addresses change; the servers still talk to
 * moto directly, as a server next to its bucket would, except the one that presigns mpu-1g's
 * part URLs (see {@link linkServers}).
 */
import { startLatencyProxy, type LatencyProxy, type LatencyProxyOptions } from './latency-proxy.js';
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

/** The latency proxy's options for a link. */
export function linkProxyOptions(link: Link): LatencyProxyOptions {
  return { rttMs: link.rttMs, ...(link.bandwidthBytesPerS ? { bandwidthBytesPerS: link.bandwidthBytesPerS } : {}) };
}

/**
 * Starts one proxy per running server (and one for moto) and returns the servers with the
 * clients' URLs and `MLFLOW_S3_ENDPOINT_URL` pointing at them. The proxied multipart's part
 * URLs (mpu-1g) are presigned by the server for the endpoint it knows moto by, so the `s3`
 * server is not reused: a second one is started that reaches moto through the link's proxy,
 * and both clients' part PUTs cross the link. Its own two calls per upload to moto
 * (`CreateMultipartUpload`, `CompleteMultipartUpload`) then cross it too, one round trip each,
 * the same for either client.
 */
export async function linkServers(servers: BenchServers, link: Link): Promise<LinkedServers> {
  const proxies: Record<string, LatencyProxy> = {};
  const stops: Array<() => Promise<void>> = [];
  const close = async () => {
    await closeAll(proxies);
    await Promise.all(stops.map((stop) => stop()));
  };
  const options = linkProxyOptions(link);
  try {
    const linked: BenchServers = { ...servers };
    let motoUrl: string | undefined;
    if (servers.moto) {
      proxies.moto = await startLatencyProxy(servers.moto.endpoint, options);
      motoUrl = proxies.moto.url;
    }
    for (const name of ['plain', 's3', 'direct'] as const) {
      let server = servers[name];
      if (!server) continue;
      if (name === 's3' && motoUrl) {
        const through = await servers.startS3Through(motoUrl);
        stops.push(through.stop);
        server = through.server;
      }
      proxies[name] = await startLatencyProxy(server.url, options);
      const env = { ...server.env };
      if (env.MLFLOW_S3_ENDPOINT_URL && motoUrl) env.MLFLOW_S3_ENDPOINT_URL = motoUrl;
      linked[name] = { ...server, url: proxies[name].url, env } satisfies MlflowServer;
    }
    return { servers: linked, proxies, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function closeAll(proxies: Record<string, LatencyProxy>): Promise<void> {
  await Promise.all(Object.values(proxies).map((p) => p.close()));
}
