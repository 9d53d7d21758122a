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
 * rehash symlink names twice read once, a link to nothing skipped as OpenSSL skips it). A path that cannot be read, or a directory without a
 * PEM certificate in those files, is a `ConfigError` naming `setting`: Node would otherwise trust
 * no CA at all and refuse every server with a certificate error.
 *
 * @example
 * ```ts
 * const ca = readCaCertificates('/etc/ssl/certs', MLFLOW_CA_CERT);
 * ```
 */
export function readCaCertificates(path: string, setting: CertificateFileSetting): Buffer[] {
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
  for (const name of names) {
    const file = join(path, name);
    let pem: Buffer;
    try {
      // A subdirectory named like a certificate is no certificate (OpenSSL skips it too).
      if (!statSync(file).isFile()) continue;
      pem = readFileSync(file);
    } catch (cause) {
      // A link to a CA since removed (or a loop of links) is no certificate either: OpenSSL's
      // directory lookup (by_dir.c) passes over a name it cannot stat, and /etc/ssl/certs keeps
      // such links after a CA is removed until `update-ca-certificates` runs again.
      if (isDanglingLink(file, cause)) continue;
      throw unreadableCertificateError(file, setting, cause);
    }
    const text = pem.toString('latin1');
    if (!PEM_CERTIFICATE.test(text) || seen.has(text)) continue;
    seen.add(text);
    certificates.push(pem);
  }
  if (certificates.length === 0) throw noCaCertificatesError(path, setting);
  return certificates;
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
