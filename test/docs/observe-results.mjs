/**
 * For the docs-examples harness: wraps the package's exports so that every value the library
 * returns (or resolves) is looked at, and each `UploadResult` with `status: 'failed'` is
 * recorded in `globalThis.__failedExampleResults`. run-examples.mjs fails the example that
 * produced one: with the default `onError: 'return'`, an upload that failed would otherwise
 * pass silently.
 *
 * Functions are wrapped; classes keep their identity (`instanceof`, statics, subclassing) and
 * get their instances' methods wrapped; error classes are left alone.
 */
globalThis.__failedExampleResults ??= [];

/** An UploadResult (or a stage helper's object of them, or an array of them) that failed. */
function look(value, where, depth = 0) {
  if (!value || typeof value !== 'object' || depth > 2) return;
  if (Array.isArray(value)) {
    for (const item of value) look(item, where, depth + 1);
    return;
  }
  if (value.status === 'failed' && Array.isArray(value.files)) {
    globalThis.__failedExampleResults.push(`${where} returned a failed result: ${value.reason ?? ''} ${value.error?.message ?? ''}`.trim());
    return;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) for (const item of Object.values(value)) look(item, where, depth + 1);
}

function observed(value, where) {
  if (value && typeof value.then === 'function') {
    return value.then((resolved) => {
      look(resolved, where);
      return resolved;
    });
  }
  look(value, where);
  return value;
}

function wrapFunction(fn, where) {
  return function (...args) {
    return observed(fn.apply(this, args), where);
  };
}

const isClass = (value) => typeof value === 'function' && /^class\b/.test(Function.prototype.toString.call(value));

function wrapClass(Class, name) {
  if (Class.prototype instanceof Error || Class === Error) return Class;
  const methods = new Set();
  for (let proto = Class.prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, key);
      if (key !== 'constructor' && typeof descriptor?.value === 'function') methods.add(key);
    }
  }
  return new Proxy(Class, {
    construct(target, args, newTarget) {
      const instance = Reflect.construct(target, args, newTarget);
      for (const key of methods) {
        const method = instance[key];
        Object.defineProperty(instance, key, { value: wrapFunction(method, `${name}.${key}`), configurable: true, writable: true });
      }
      return instance;
    },
  });
}

/** The package's exports, with functions and classes observed. */
export function observeExports(real) {
  const out = {};
  for (const [name, value] of Object.entries(real)) {
    out[name] = isClass(value) ? wrapClass(value, name) : typeof value === 'function' ? wrapFunction(value, name) : value;
  }
  return out;
}
