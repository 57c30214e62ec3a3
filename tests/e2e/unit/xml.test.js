import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { NS, xml } from '../../../crates/web/client/lib/xml.js';
import { parse } from './fixtures.js';

describe('stanza tree', () => {
  it('serializes namespaces once, escapes text and attributes, and parses back', () => {
    const stanza = xml('message', { xmlns: NS.client, to: 'r@conference.d', type: 'groupchat' }, [
      xml('body', {}, '<b>&"hi"</b>'),
      xml('nick', { xmlns: NS.nick }, 'A & B'),
    ]);
    const text = stanza.toString();
    assert.equal(
      text,
      '<message xmlns="jabber:client" to="r@conference.d" type="groupchat"><body>&#60;b&#62;&#38;&#34;hi&#34;&#60;/b&#62;</body><nick xmlns="http://jabber.org/protocol/nick">A &#38; B</nick></message>',
    );
    const back = parse(text);
    assert.equal(back.child('body').text, '<b>&"hi"</b>');
    assert.equal(back.child('nick', NS.nick).text, 'A & B');
    assert.equal(back.child('body').ns, NS.client);
  });

  it('leaves out undefined attributes', () => {
    assert.equal(xml('a', { x: undefined, y: 1 }).toString(), '<a y="1"/>');
  });
});
