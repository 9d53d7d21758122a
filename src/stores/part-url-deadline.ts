/**
 * When the part URLs of MLflow's proxied multipart upload stop working, and whether a file's
 * parts will all be sent by then.
 *
 * `mpu/create` signs every part URL at once, for about an hour: boto3's default of 3600 s for
 * S3 (`generate_presigned_url` without `ExpiresIn`), 60 minutes for GCS
 * (`generate_signed_url(expiration=timedelta(minutes=60))`) and a one-hour SAS for Azure, in
 * MLflow 3.17.2's `s3_artifact_repo.py`, `gcs_artifact_repo.py` and
 * `azure_blob_artifact_repo.py`. MLflow has no call that signs them again. So a file whose parts
 * take longer than that to send (a 100 GiB checkpoint at 25 MiB/s) cannot finish as multipart:
 * every part sent after the hour is refused with 403, and a rerun starts over with new URLs and
 * the same hour. The store reads the deadline from the URLs' own query and, when the parts will
 * not make it, sends the file as one PUT through the server instead, which has no deadline.
 *
 * @module
 */

/**
 * When a signed URL stops being accepted, in ms since the epoch, read from its query; undefined
 * when it does not say. Reads S3's and GCS's V4 signatures (`X-Amz-Date` plus `X-Amz-Expires`,
 * `X-Goog-Date` plus `X-Goog-Expires`), their V2 `Expires` (epoch seconds) and an Azure SAS's
 * `se` (signed expiry).
 *
 * @example
 * ```ts
 * signedUrlExpiry('https://b.s3.amazonaws.com/k?partNumber=1&X-Amz-Date=20261206T020000Z&X-Amz-Expires=3600&X-Amz-Signature=x');
 * // Date.parse('2026-12-06T03:00:00Z')
 * signedUrlExpiry('https://a.blob.core.windows.net/c/k?comp=block&se=2026-12-06T03%3A00%3A00Z&sig=x'); // the same
 * ```
 */
export function signedUrlExpiry(url: string): number | undefined {
  let query: URLSearchParams;
  try {
    query = new URL(url).searchParams;
  } catch {
    return undefined;
  }
  for (const prefix of ['X-Amz', 'X-Goog']) {
    const signedAt = compactUtc(query.get(`${prefix}-Date`));
    const seconds = positiveInteger(query.get(`${prefix}-Expires`));
    if (signedAt !== undefined && seconds !== undefined) return signedAt + seconds * 1000;
  }
  const epochSeconds = positiveInteger(query.get('Expires'));
  if (epochSeconds !== undefined) return epochSeconds * 1000;
  const sasExpiry = query.get('se');
  if (sasExpiry) {
    // A SAS time is UTC, to the day, minute or second (`2026-12-06`, `2026-12-06T03:00Z`).
    const parsed = Date.parse(/^\d{4}-\d\d-\d\d$/.test(sasExpiry) ? `${sasExpiry}T00:00:00Z` : sasExpiry);
    if (Number.isFinite(parsed)) return parsed;
  }
  return undefined;
}

/** `20261206T020000Z` (SigV4's date) as ms since the epoch. */
function compactUtc(value: string | null): number | undefined {
  const m = value ? /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(value) : null;
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : undefined;
}

function positiveInteger(value: string | null): number | undefined {
  return value && /^\d+$/.test(value) && Number(value) > 0 ? Number(value) : undefined;
}

/** How long a projection of the rest waits for a measured rate: 30 s, or a tenth of a shorter lifetime. */
const MEASURE_MS = 30_000;
/** Kept free before the deadline, for clocks that differ: a minute, or a twentieth of a shorter lifetime. */
const MARGIN_MS = 60_000;

/**
 * The deadline of one multipart upload's part URLs, and the check the part loop makes against
 * it as each part starts ({@link PartUrlDeadline.partStarting}), with the bytes of the parts
 * started so far. Times are this machine's clock; a margin covers a server whose clock differs
 * by less.
 *
 * @example
 * ```ts
 * // `earlier`: the deadline of the last file whose parts were sent, if any.
 * const deadline = PartUrlDeadline.of(credentials.map((c) => c.url), file.size, { expectedRate: earlier?.measuredRate });
 * // as each part starts:
 * const tooLate = deadline?.partStarting(part.length);
 * if (tooLate) throw new Error(`sending it as one PUT instead: ${tooLate}`);
 * ```
 */
export class PartUrlDeadline {
  private readonly startedAt: number;
  private readonly margin: number;
  private readonly measureFor: number;
  /** Bytes of the parts started: counting parts in flight as sent errs towards going on. */
  private startedBytes = 0;
  private measured: number | undefined;

  private constructor(
    /** The earliest expiry of the part URLs, ms since the epoch. */
    readonly expiresAt: number,
    private readonly totalBytes: number,
    now: number,
    private readonly expectedRate: number | undefined,
  ) {
    this.startedAt = now;
    const lifetime = Math.max(0, expiresAt - now);
    this.margin = Math.min(MARGIN_MS, lifetime / 20);
    this.measureFor = Math.min(MEASURE_MS, lifetime / 10);
  }

  /**
   * The deadline of `urls` (the earliest), for a file of `totalBytes`; undefined when no URL
   * says.
   */
  static of(
    urls: readonly string[],
    totalBytes: number,
    options: {
      /** This machine's clock now, ms since the epoch. @default Date.now() */
      now?: number | undefined;
      /**
       * The rate (bytes per ms) to project with until this file's own is measured: an earlier
       * file's {@link PartUrlDeadline.measuredRate} over the same link. A file that the parts of
       * the last one show cannot make it then goes as one PUT at once, instead of after its own
       * first half-minute of parts. @default none (no projection before this file's own rate)
       */
      expectedRate?: number | undefined;
    } = {},
  ): PartUrlDeadline | undefined {
    let earliest: number | undefined;
    for (const url of urls) {
      const expiry = signedUrlExpiry(url);
      if (expiry !== undefined && (earliest === undefined || expiry < earliest)) earliest = expiry;
    }
    const expectedRate = options.expectedRate !== undefined && options.expectedRate > 0 ? options.expectedRate : undefined;
    return earliest === undefined ? undefined : new PartUrlDeadline(earliest, totalBytes, options.now ?? Date.now(), expectedRate);
  }

  /**
   * The rate of this file's parts, bytes started per ms, once it has been measured for a while
   * (30 s, or a tenth of a shorter lifetime); undefined before.
   */
  get measuredRate(): number | undefined {
    return this.measured;
  }

  /**
   * Counts a part of `bytes` as started, and says why the parts cannot all be sent before the
   * URLs expire, or undefined while they can: the deadline (less the margin) has come, or the
   * bytes left would take past it at the rate of the bytes started so far (once measured for a
   * while; before that, at the `expectedRate` given, if any).
   */
  partStarting(bytes: number, now = Date.now()): string | undefined {
    const started = (this.startedBytes += bytes);
    const usableUntil = this.expiresAt - this.margin;
    if (now >= usableUntil) return `its part URLs expire at ${new Date(this.expiresAt).toISOString()}`;
    const elapsed = now - this.startedAt;
    if (elapsed >= this.measureFor && started > 0) this.measured = started / elapsed;
    const rate = this.measured ?? this.expectedRate;
    if (rate === undefined || started >= this.totalBytes) return undefined;
    const finishAt = now + (this.totalBytes - started) / rate;
    if (finishAt <= usableUntil) return undefined;
    const whose = this.measured === undefined ? " (the rate an earlier file's parts were sent at)" : '';
    return `its part URLs expire at ${new Date(this.expiresAt).toISOString()}, and at ${formatRate(rate)}${whose} the parts would take until ${new Date(finishAt).toISOString()}`;
  }
}

function formatRate(bytesPerMs: number): string {
  const mibPerSecond = (bytesPerMs * 1000) / 1024 ** 2;
  return `${mibPerSecond >= 10 ? mibPerSecond.toFixed(0) : mibPerSecond.toPrecision(2)} MiB/s`;
}
