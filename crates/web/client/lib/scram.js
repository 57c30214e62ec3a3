// @ts-check
/**
 * SASL SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677) with WebCrypto, no channel binding
 * (`n,,`), for user name and password logins; and the PLAIN message (RFC 4616).
 */

const encoder = new TextEncoder();

/** @param {Uint8Array | ArrayBuffer} bytes */
const toBase64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
/** @param {string} text */
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
/** @param {string} text */
export const base64Utf8 = (text) => toBase64(encoder.encode(text));

/** RFC 5802 `saslname`: `=` and `,` escaped. @param {string} name */
const saslName = (name) => name.replace(/=/g, '=3D').replace(/,/g, '=2C');

/** The SCRAM mechanisms we speak, best first, with their WebCrypto hash. */
export const SCRAM = /** @type {const} */ ([
  ['SCRAM-SHA-256', 'SHA-256'],
  ['SCRAM-SHA-1', 'SHA-1'],
]);

/** The PLAIN message: no authorization identity, the user name, the password. @param {string} user @param {string} password */
export const plainMessage = (user, password) => base64Utf8(`\0${user}\0${password}`);

/** One SCRAM exchange: `first()`, then `final(challenge)`, then `verify(success data)`. */
export class ScramClient {
  #hash;
  #user;
  #password;
  #nonce;
  /** @type {Uint8Array | undefined} */
  #serverSignature;

  /** @param {'SHA-1' | 'SHA-256'} hash @param {string} user @param {string} password */
  constructor(hash, user, password) {
    this.#hash = hash;
    this.#user = user;
    this.#password = password;
    this.#nonce = toBase64(crypto.getRandomValues(new Uint8Array(18)));
  }

  get #bare() {
    return `n=${saslName(this.#user)},r=${this.#nonce}`;
  }

  /** The client-first message, base64. */
  first() {
    return base64Utf8(`n,,${this.#bare}`);
  }

  /** The client-final message (base64) for the server-first challenge (base64). @param {string} challenge */
  async final(challenge) {
    const serverFirst = atob(challenge);
    const fields = Object.fromEntries(serverFirst.split(',').map((f) => [f[0], f.slice(2)]));
    const iterations = Number(fields.i);
    if (!fields.r?.startsWith(this.#nonce) || !fields.s || !(iterations > 0) || iterations > 1_000_000) {
      throw new Error('the server sent a bad SCRAM challenge');
    }
    const bits = this.#hash === 'SHA-1' ? 160 : 256;
    const key = await crypto.subtle.importKey('raw', encoder.encode(this.#password.normalize('NFKC')), 'PBKDF2', false, ['deriveBits']);
    const salted = new Uint8Array(await crypto.subtle.deriveBits({ name: 'PBKDF2', salt: fromBase64(fields.s), iterations, hash: this.#hash }, key, bits));
    const clientKey = await this.#hmac(salted, 'Client Key');
    const storedKey = new Uint8Array(await crypto.subtle.digest(this.#hash, clientKey));
    const withoutProof = `c=biws,r=${fields.r}`;
    const authMessage = `${this.#bare},${serverFirst},${withoutProof}`;
    const signature = await this.#hmac(storedKey, authMessage);
    const proof = clientKey.map((b, i) => b ^ signature[i]);
    this.#serverSignature = await this.#hmac(await this.#hmac(salted, 'Server Key'), authMessage);
    return base64Utf8(`${withoutProof},p=${toBase64(proof)}`);
  }

  /** Whether the server's `v=` proves it knew the password. @param {string} data base64 */
  verify(data) {
    const expected = this.#serverSignature ? `v=${toBase64(this.#serverSignature)}` : undefined;
    return !!expected && atob(data) === expected;
  }

  /** @param {Uint8Array<ArrayBuffer>} key @param {string} text */
  async #hmac(key, text) {
    const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: this.#hash }, false, ['sign']);
    return new Uint8Array(await crypto.subtle.sign('HMAC', k, encoder.encode(text)));
  }
}
