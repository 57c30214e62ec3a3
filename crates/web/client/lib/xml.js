// @ts-check
/**
 * A small XML element tree for stanzas: built by the client, parsed from the browser's
 * DOMParser (or any W3C DOM, as the unit tests use), serialized for the wire. The
 * protocol code works on this tree only, so it runs the same in the browser and in node.
 */

export const NS = Object.freeze({
  client: 'jabber:client',
  framing: 'urn:ietf:params:xml:ns:xmpp-framing',
  stream: 'http://etherx.jabber.org/streams',
  sasl: 'urn:ietf:params:xml:ns:xmpp-sasl',
  bind: 'urn:ietf:params:xml:ns:xmpp-bind',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  ping: 'urn:xmpp:ping',
  sm: 'urn:xmpp:sm:3',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  muc: 'http://jabber.org/protocol/muc',
  mucOwner: 'http://jabber.org/protocol/muc#owner',
  mucAdmin: 'http://jabber.org/protocol/muc#admin',
  dataForms: 'jabber:x:data',
  muteAudio: 'http://jitsi.org/jitmeet/audio',
  muteVideo: 'http://jitsi.org/jitmeet/video',
  mucUser: 'http://jabber.org/protocol/muc#user',
  nick: 'http://jabber.org/protocol/nick',
  delay: 'urn:xmpp:delay',
  focus: 'http://jitsi.org/protocol/focus',
  jitmeet: 'http://jitsi.org/jitmeet',
  colibri: 'http://jitsi.org/protocol/colibri',
  jingle: 'urn:xmpp:jingle:1',
  rtp: 'urn:xmpp:jingle:apps:rtp:1',
  ssma: 'urn:xmpp:jingle:apps:rtp:ssma:0',
  rtcpFb: 'urn:xmpp:jingle:apps:rtp:rtcp-fb:0',
  hdrext: 'urn:xmpp:jingle:apps:rtp:rtp-hdrext:0',
  ice: 'urn:xmpp:jingle:transports:ice-udp:1',
  dtls: 'urn:xmpp:jingle:apps:dtls:0',
  grouping: 'urn:xmpp:jingle:apps:grouping:0',
});

export class XmlElement {
  /**
   * @param {string} name local name
   * @param {string | undefined} ns namespace; undefined inherits the parent's when serialized
   * @param {Record<string, string>} [attrs]
   * @param {XmlElement[]} [children]
   * @param {string} [text] character data (elements with text have no children here)
   */
  constructor(name, ns, attrs = {}, children = [], text = '') {
    this.name = name;
    this.ns = ns;
    this.attrs = attrs;
    this.children = children;
    this.text = text;
  }

  /** @param {string} name @returns {string | undefined} */
  attr(name) {
    return Object.prototype.hasOwnProperty.call(this.attrs, name) ? this.attrs[name] : undefined;
  }

  /**
   * First child with this name (and namespace, if given).
   * @param {string} name @param {string} [ns] @returns {XmlElement | undefined}
   */
  child(name, ns) {
    return this.children.find((c) => c.name === name && (ns === undefined || c.ns === ns));
  }

  /** @param {string} name @param {string} [ns] @returns {XmlElement[]} */
  all(name, ns) {
    return this.children.filter((c) => c.name === name && (ns === undefined || c.ns === ns));
  }

  /** @param {XmlElement} child @returns {this} */
  append(child) {
    this.children.push(child);
    return this;
  }

  /** @param {string} [parentNs] @returns {string} */
  toString(parentNs) {
    let out = `<${this.name}`;
    const ns = this.ns ?? parentNs;
    if (ns !== undefined && ns !== parentNs) out += ` xmlns="${escapeXml(ns)}"`;
    for (const [key, value] of Object.entries(this.attrs)) {
      out += ` ${key}="${escapeXml(value)}"`;
    }
    if (this.children.length === 0 && this.text === '') return `${out}/>`;
    out += '>' + escapeXml(this.text);
    for (const c of this.children) out += c.toString(ns);
    return `${out}</${this.name}>`;
  }
}

/**
 * Builds an element. An `xmlns` attribute sets the namespace.
 * @param {string} name
 * @param {Record<string, string | number | boolean | undefined>} [attrs] undefined values are left out
 * @param {(XmlElement | string | undefined | false)[] | string} [content] children or text
 * @returns {XmlElement}
 */
export function xml(name, attrs = {}, content = []) {
  /** @type {Record<string, string>} */
  const clean = {};
  let ns;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined) continue;
    if (key === 'xmlns') ns = String(value);
    else clean[key] = String(value);
  }
  if (typeof content === 'string') return new XmlElement(name, ns, clean, [], content);
  /** @type {XmlElement[]} */
  const children = [];
  let text = '';
  for (const c of content) {
    if (c instanceof XmlElement) children.push(c);
    else if (typeof c === 'string') text += c;
  }
  return new XmlElement(name, ns, clean, children, text);
}

/** @param {string} s */
export function escapeXml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Converts a W3C DOM element (browser DOMParser, or xmldom in tests) to the tree.
 * @param {Element} node
 * @returns {XmlElement}
 */
export function fromDom(node) {
  /** @type {Record<string, string>} */
  const attrs = {};
  for (let i = 0; i < node.attributes.length; i++) {
    const a = /** @type {Attr} */ (node.attributes[i]);
    if (a.name === 'xmlns' || a.name.startsWith('xmlns:')) continue;
    attrs[a.name] = a.value;
  }
  /** @type {XmlElement[]} */
  const children = [];
  let text = '';
  for (let i = 0; i < node.childNodes.length; i++) {
    const c = /** @type {Node} */ (node.childNodes[i]);
    if (c.nodeType === 1) children.push(fromDom(/** @type {Element} */ (c)));
    else if (c.nodeType === 3 || c.nodeType === 4) text += c.nodeValue ?? '';
  }
  const name = node.localName ?? node.nodeName;
  return new XmlElement(name, node.namespaceURI ?? undefined, attrs, children, children.length ? '' : text);
}

/** Largest frame the client parses; the server limits stanzas far below this. */
const MAX_FRAME = 1 << 20;

/**
 * Parses one complete XML document (one RFC 7395 frame).
 * @param {string} text
 * @param {{ parseFromString(s: string, type: string): Document }} [parser]
 * @returns {XmlElement}
 */
export function parseXml(text, parser) {
  if (text.length > MAX_FRAME) throw new Error('XML frame too large');
  const p = parser ?? new DOMParser();
  const doc = p.parseFromString(text, 'text/xml');
  const root = doc.documentElement;
  if (!root || root.getElementsByTagName('parsererror').length > 0 || root.nodeName === 'parsererror') {
    throw new Error('malformed XML frame');
  }
  return fromDom(root);
}
