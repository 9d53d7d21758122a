/**
 * TLS failures that every attempt would meet again: the server's certificate is not trusted,
 * out of date or for another name, the server does not speak TLS (`https://` to a plain-HTTP
 * port), or it refused this client's certificate. The retry classifier (`retry.ts`) does not
 * retry them, and the HTTP client (`http.ts`) reports them as a `ConfigError` saying which setting
 * fixes it, instead of a `NetworkError` retried for minutes with OpenSSL's text (a source path
 * and a newline) as its only clue. Also the error for a certificate file that cannot be read,
 * which the MLflow connection and the HTTP client both raise, and for a CA directory without
 * a certificate (`ca-certificates.ts`).
 *
 * @module
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { ConfigError } from './errors.js';

/** A TLS failure no retry mends: Node's code, what it means, and what fixes it. */
export interface TlsFailure {
  /** Node's (or OpenSSL's) error code, e.g. `SELF_SIGNED_CERT_IN_CHAIN`. */
  code: string;
  /** What is wrong, in a few words. */
  what: string;
  /** What fixes it. */
  hint: string;
}

/**
 * Where the caller's TLS settings are set, as its hints name them: the MLflow connection's
 * ({@link MLFLOW_TLS_SETTINGS}, the default) or another client's (publishToHub's `tls` option).
 */
export interface TlsSettingNames {
  /** The CA bundle to trust. */
  ca: string;
  /** Skipping the certificate check; left out when the client has none. */
  insecure?: string;
  /** The client certificate (mutual TLS); left out when the client cannot send one. */
  clientCert?: string;
}

/** The MLflow connection's TLS settings (`mlflow/connection.ts`). */
export const MLFLOW_TLS_SETTINGS: TlsSettingNames = {
  ca: 'MLFLOW_TRACKING_SERVER_CERT_PATH (the `caCertPath` option)',
  insecure: 'MLFLOW_TRACKING_INSECURE_TLS=true',
  clientCert: 'MLFLOW_TRACKING_CLIENT_CERT_PATH (the `clientCertPath` option)',
};

/** A certificate file's setting, as the error for a file that cannot be read names it. */
export interface CertificateFileSetting {
  /** The option that sets it (`caCertPath`). */
  optionName: string;
  /** The environment variable that sets it, when there is one; the hint says to point it at the file. */
  envName?: string;
  /** What the file must hold, for the hint. */
  what: string;
}

/** The MLflow connection's CA bundle (`mlflow/connection.ts`). */
export const MLFLOW_CA_CERT: CertificateFileSetting = {
  optionName: 'caCertPath',
  envName: 'MLFLOW_TRACKING_SERVER_CERT_PATH',
  what: 'a PEM CA bundle that signed the server certificate (or a directory of such CA certificates)',
};

/** The MLflow connection's client certificate (`mlflow/connection.ts`). */
export const MLFLOW_CLIENT_CERT: CertificateFileSetting = {
  optionName: 'clientCertPath',
  envName: 'MLFLOW_TRACKING_CLIENT_CERT_PATH',
  what: 'one PEM file with the client certificate and its private key',
};

/** The certificate files of an HTTP client's TLS options, as the error for one that cannot be read names them. */
export interface CertificateFileSettings {
  /** `caCertPath`'s. */
  ca: CertificateFileSetting;
  /** `clientCertPath`'s. */
  client: CertificateFileSetting;
}

/** The MLflow connection's certificate files. */
export const MLFLOW_CERTIFICATE_FILES: CertificateFileSettings = { ca: MLFLOW_CA_CERT, client: MLFLOW_CLIENT_CERT };

/**
 * The error for a certificate file that cannot be read, naming its setting.
 *
 * @example
 * ```ts
 * throw unreadableCertificateError('/etc/ssl/missing.pem', MLFLOW_CA_CERT, cause);
 * ```
 */
export function unreadableCertificateError(path: string, setting: CertificateFileSetting, cause: unknown): ConfigError {
  const fix = settingToFix(setting);
  return new ConfigError(`The certificate file ${path} (${settingLabel(setting)}) cannot be read.`, {
    issues: [{ path: fix, message: 'file missing or unreadable' }],
    hint: `Point ${fix} at ${setting.what}.`,
    cause,
  });
}

/**
 * The error for a CA directory (a `caCertPath` that is a directory, as requests takes one) in
 * which no file is read as a PEM certificate (`core/ca-certificates.ts` says which files are).
 *
 * @example
 * ```ts
 * throw noCaCertificatesError('/etc/my-cas', MLFLOW_CA_CERT);
 * ```
 */
export function noCaCertificatesError(path: string, setting: CertificateFileSetting): ConfigError {
  const fix = settingToFix(setting);
  return new ConfigError(`The CA directory ${path} (${settingLabel(setting)}) holds no PEM certificate.`, {
    issues: [{ path: fix, message: 'no <hash>.0, *.pem or *.crt file in it holds a PEM certificate' }],
    hint: `Put the CA certificates in ${path} as PEM files named *.pem or *.crt (or rehashed: \`openssl rehash ${path}\`), or point ${fix} at ${setting.what}.`,
  });
}

/** The setting a hint tells the user to change: its environment variable, else its option. */
function settingToFix(setting: CertificateFileSetting): string {
  return setting.envName ?? setting.optionName;
}

/** The setting as an error message names it: `caCertPath / MLFLOW_TRACKING_SERVER_CERT_PATH`. */
function settingLabel(setting: CertificateFileSetting): string {
  return setting.envName ? `${setting.optionName} / ${setting.envName}` : setting.optionName;
}

/**
 * Fails early, with {@link unreadableCertificateError}, when a certificate file cannot be read.
 *
 * @example
 * ```ts
 * assertCertificateReadable(process.env.MLFLOW_TRACKING_CLIENT_CERT_PATH, MLFLOW_CLIENT_CERT);
 * ```
 */
export function assertCertificateReadable(path: string | undefined, setting: CertificateFileSetting): void {
  if (path === undefined) return;
  try {
    accessSync(path, fsConstants.R_OK);
  } catch (cause) {
    throw unreadableCertificateError(path, setting, cause);
  }
}

/**
 * The TLS failure no retry mends that `error`, or an error it was caused by (`fetch failed`
 * wraps the socket's), is; `undefined` for anything else. Its hint names `settings`.
 *
 * @example
 * ```ts
 * permanentTlsFailure(Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }))?.hint;
 * ```
 */
export function permanentTlsFailure(error: unknown, settings: TlsSettingNames = MLFLOW_TLS_SETTINGS): TlsFailure | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const found = describeTlsFailure(current, settings);
    if (found) return found;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Certificate checks that fail because this machine does not trust the server's issuer. */
const UNTRUSTED_CERTIFICATE = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/** What one error (of the chain) says, when it is a TLS failure no retry mends. */
function describeTlsFailure(error: object, settings: TlsSettingNames): TlsFailure | undefined {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return undefined;
  const message = error instanceof Error ? error.message : '';
  const trust = `If the server uses a private CA, point ${settings.ca} at a PEM bundle of that CA.${settings.insecure ? ` ${settings.insecure} skips the check, for test servers only.` : ''}`;
  if (UNTRUSTED_CERTIFICATE.has(code)) return { code, what: "this machine does not trust the server's TLS certificate", hint: trust };
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return { code, what: `the server's TLS certificate ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'}`, hint: "Renew the server's certificate, or check this machine's clock." };
  }
  if (code === 'CERT_REVOKED') return { code, what: "the server's TLS certificate is revoked", hint: "Renew the server's certificate." };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return { code, what: "the server's TLS certificate is for another host name", hint: 'Use a host name the certificate names in the URI (not its IP address, unless the certificate lists it).' };
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || (code === 'EPROTO' && /wrong version number|packet length too long/.test(message))) {
    return { code, what: 'the server did not answer in TLS', hint: 'If the server serves plain HTTP, use http:// instead of https:// in its URI.' };
  }
  if (/^ERR_SSL_(TLSV13_ALERT_CERTIFICATE_REQUIRED|SSLV3_ALERT_BAD_CERTIFICATE|TLSV1_ALERT_UNKNOWN_CA|SSLV3_ALERT_CERTIFICATE_UNKNOWN)$/.test(code)) {
    return {
      code,
      what: "the server refused this client's TLS certificate (or wants one)",
      hint: settings.clientCert
        ? `Set ${settings.clientCert} to one PEM file with a client certificate the server trusts and its private key.`
        : 'This client sends no client certificate: use an endpoint of the server that does not ask for one.',
    };
  }
  return undefined;
}

