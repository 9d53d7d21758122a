/**
 * Reads the CA certificates a `caCertPath` setting names: a PEM bundle, or a directory of CA
 * certificates, as MLflow's Python client takes either (requests' adapters.py `cert_verify`
 * hands a directory to OpenSSL as `ca_cert_dir`). OpenSSL looks a directory's certificates up
 * by the `<hash>.<n>` names `openssl rehash` (or `c_rehash`) gives them; a directory of plain
 * `*.pem` / `*.crt` files, which OpenSSL would not find without those names, is read too, so a
 * folder of CA files works without a rehash.
 *
 * @module
 */
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Logger, silentLogger } from './logger.js';
import { type CertificateFileSetting, noCaCertificatesError, unreadableCertificateError } from './tls-failure.js';

/**
 * Names of a CA directory's files that are read: OpenSSL's hashed certificate names
 * (`5ed36f99.0`; not the `<hash>.r<n>` CRLs) and, for folders never rehashed, `*.pem` / `*.crt`.
 */
const CA_FILE_NAME = /^(?:[0-9a-f]{8}\.\d+|.+\.(?:pem|crt))$/i;

/** A PEM block OpenSSL's directory lookup loads as a trusted certificate. */
const PEM_CERTIFICATE = /-----BEGIN (?:TRUSTED )?CERTIFICATE-----/;

/**
 * The CA certificates at `path`, for the `ca` option of Node's TLS: the file's bytes, or for a
 * directory each certificate file in it (see {@link CA_FILE_NAME}; in name order, a file that a
 * rehash symlink names twice read once, a link to nothing skipped as OpenSSL skips it). A file of
 * the directory this user may not read is skipped too, as OpenSSL's directory lookup skips it,
 * with a warning to `logger` naming it (once per process). A path that cannot be read, or a
 * directory without a PEM certificate in the files it could read, is a `ConfigError` naming
 * `setting` (the first unreadable file's, when there was one): Node would otherwise trust no CA
 * at all and refuse every server with a certificate error.
 *
 * @param logger Where a skipped unreadable file is warned about. @default silentLogger
 *
 * @example
 * ```ts
 * const ca = readCaCertificates('/etc/ssl/certs', MLFLOW_CA_CERT, logger);
 * ```
 */
export function readCaCertificates(path: string, setting: CertificateFileSetting, logger: Logger = silentLogger): Buffer[] {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
    if (!isDirectory) return [readFileSync(path)];
  } catch (cause) {
    throw unreadableCertificateError(path, setting, cause);
  }
  let names: string[];
  try {
    names = readdirSync(path).filter((name) => CA_FILE_NAME.test(name)).sort();
  } catch (cause) {
    throw unreadableCertificateError(path, setting, cause);
  }
  const seen = new Set<string>();
  const certificates: Buffer[] = [];
  const unreadable: { file: string; cause: unknown }[] = [];
  for (const name of names) {
    const file = join(path, name);
    try {
      // A subdirectory named like a certificate is no certificate (OpenSSL skips it too).
      if (!statSync(file).isFile()) continue;
    } catch (cause) {
      // A link to a CA since removed (or a loop of links) is no certificate either: OpenSSL's
      // directory lookup (by_dir.c) passes over a name it cannot stat, and /etc/ssl/certs keeps
      // such links after a CA is removed until `update-ca-certificates` runs again.
      if (isDanglingLink(file, cause)) continue;
      throw unreadableCertificateError(file, setting, cause);
    }
    let pem: Buffer;
    try {
      pem = readFileSync(file);
    } catch (cause) {
      // OpenSSL's lookup passes over a file it cannot load too (by_dir.c: a failed
      // X509_load_cert_file ends that name's lookup, not the directory's): one CA file another
      // user's umask left unreadable must not stop every https request trusting the others.
      unreadable.push({ file, cause });
      continue;
    }
    const text = pem.toString('latin1');
    if (!PEM_CERTIFICATE.test(text) || seen.has(text)) continue;
    seen.add(text);
    certificates.push(pem);
  }
  if (certificates.length === 0) {
    // Nothing left to trust: the unreadable file is the likelier fault, and its error says so.
    const [first] = unreadable;
    throw first ? unreadableCertificateError(first.file, setting, first.cause) : noCaCertificatesError(path, setting);
  }
  for (const { file, cause } of unreadable) warnSkippedOnce(logger, file, path, cause);
  return certificates;
}

/**
 * The unreadable CA files already warned about in this process: every HTTP client reads the
 * directory again (an uploader per checkpoint makes one), and the same file would be warned
 * about at each.
 */
const warnedUnreadable = new Set<string>();

/** Warns that `file` of the CA directory `directory` was skipped, once per process. */
function warnSkippedOnce(logger: Logger, file: string, directory: string, cause: unknown): void {
  if (warnedUnreadable.has(file)) return;
  warnedUnreadable.add(file);
  logger.warn(`Skipped ${file} of the CA directory ${directory}: it cannot be read, so the CA certificate in it (if any) is not trusted. Make it readable to this user, or remove it.`, {
    error: (cause as NodeJS.ErrnoException | undefined)?.code ?? String(cause),
  });
}

/** Whether `file`, which failed with `cause`, is a symbolic link to nothing (`ENOENT`) or a loop of links (`ELOOP`). */
function isDanglingLink(file: string, cause: unknown): boolean {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOENT' && code !== 'ELOOP') return false;
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}
