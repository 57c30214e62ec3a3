//! Incoming XML: the rxml push parser behind a guard that bounds stanza size and nesting
//! depth before any element is built.
//!
//! rxml already refuses DTDs, entity declarations and processing instructions, but it has no
//! depth limit, and minidom's tree building and recursive `Drop` are super-linear in depth.
//! So the elements are built here, event by event, and the guard runs on every event.

use minidom::Element;
use rxml::error::EndOrError;
use rxml::{Event, Parse};

/// Bounds applied to every stanza read from a client.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of one stanza (or of the stream header), counted as the parser consumes them.
    pub max_stanza_bytes: usize,
    /// Element nesting inside one stanza (the stanza itself is depth 1).
    pub max_depth: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("stanza larger than {0} bytes")]
    TooLarge(usize),
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
}

/// What a byte stream (RFC 6120, one long document) yields.
#[derive(Debug)]
pub enum StreamEvent {
    /// The `<stream:stream>` header, as a childless element.
    Open(Element),
    /// One complete top-level element: a stanza or a stream-level element.
    Element(Element),
    /// `</stream:stream>`.
    Close,
}

/// Builds elements from rxml events, enforcing [`Limits`].
struct TreeGuard {
    limits: Limits,
    stack: Vec<Element>,
    bytes: usize,
}

impl TreeGuard {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            stack: Vec::new(),
            bytes: 0,
        }
    }

    fn count(&mut self, consumed: usize) -> Result<(), XmlError> {
        self.bytes += consumed;
        if self.bytes > self.limits.max_stanza_bytes {
            return Err(XmlError::TooLarge(self.limits.max_stanza_bytes));
        }
        Ok(())
    }

    /// Feeds one event; returns the element it completed, if any.
    fn event(&mut self, event: Event) -> Result<Option<Element>, XmlError> {
        match event {
            Event::XmlDeclaration(..) => Ok(None),
            Event::StartElement(_, (ns, name), attrs) => {
                if self.stack.len() >= self.limits.max_depth {
                    return Err(XmlError::TooDeep(self.limits.max_depth));
                }
                let ns = if ns.is_empty() {
                    crate::stanza::ns::CLIENT
                } else {
                    ns.as_str()
                };
                let mut element = Element::bare(name.as_str(), ns);
                *element.attrs_mut() = attrs;
                self.stack.push(element);
                Ok(None)
            }
            Event::EndElement(_) => {
                let element = self.stack.pop().expect("rxml checks element nesting");
                match self.stack.last_mut() {
                    Some(parent) => {
                        parent.append_child(element);
                        Ok(None)
                    }
                    None => {
                        self.bytes = 0;
                        Ok(Some(element))
                    }
                }
            }
            Event::Text(_, text) => {
                if let Some(top) = self.stack.last_mut() {
                    top.append_text(text.as_str());
                }
                Ok(None)
            }
        }
    }
}

/// Parser for an RFC 6120 byte stream (TCP): header, then top-level elements.
pub struct StreamParser {
    parser: rxml::Parser,
    guard: TreeGuard,
    in_stream: bool,
}

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        Self {
            parser: rxml::Parser::new(),
            guard: TreeGuard::new(limits),
            in_stream: false,
        }
    }

    /// Parses `data` until one event is complete and returns it, `data` left at the byte
    /// after it; `None` once `data` is used up without completing one. What follows an
    /// event may not be this parser's: after `<starttls/>` it is TLS, after a SASL success
    /// a new stream for a new parser.
    pub fn next(&mut self, data: &mut &[u8]) -> Result<Option<StreamEvent>, XmlError> {
        loop {
            let before = data.len();
            let result = self.parser.parse(data, false);
            self.guard.count(before - data.len())?;
            match result {
                Err(EndOrError::NeedMoreData) => {
                    if self.guard.stack.is_empty() {
                        // Between stanzas: give back the lexer's scratch buffers, which
                        // otherwise stay allocated for every idle connection.
                        self.parser.release_temporaries();
                    }
                    return Ok(None);
                }
                Err(EndOrError::Error(e)) => return Err(XmlError::Malformed(e.to_string())),
                Ok(None) => return Ok(None),
                Ok(Some(event)) => {
                    if let Some(event) = self.stream_event(event)? {
                        return Ok(Some(event));
                    }
                }
            }
        }
    }

    fn stream_event(&mut self, event: Event) -> Result<Option<StreamEvent>, XmlError> {
        if !self.in_stream {
            return match event {
                Event::StartElement(_, (ns, name), attrs) => {
                    self.in_stream = true;
                    self.guard.bytes = 0;
                    let mut header = Element::bare(name.as_str(), ns.as_str());
                    *header.attrs_mut() = attrs;
                    Ok(Some(StreamEvent::Open(header)))
                }
                _ => Ok(None),
            };
        }
        if self.guard.stack.is_empty() {
            match event {
                Event::EndElement(_) => return Ok(Some(StreamEvent::Close)),
                // Whitespace keep-alives between stanzas.
                Event::Text(..) => {
                    self.guard.bytes = 0;
                    return Ok(None);
                }
                _ => {}
            }
        }
        Ok(self.guard.event(event)?.map(StreamEvent::Element))
    }
}

/// One element from test text, under small limits.
#[cfg(test)]
pub(crate) fn test_element(text: &str) -> Element {
    parse_frame(
        text,
        Limits {
            max_stanza_bytes: 4096,
            max_depth: 8,
        },
    )
    .unwrap()
}

/// Parses one WebSocket text frame (RFC 7395: exactly one element per frame).
pub fn parse_frame(frame: &str, limits: Limits) -> Result<Element, XmlError> {
    if frame.len() > limits.max_stanza_bytes {
        return Err(XmlError::TooLarge(limits.max_stanza_bytes));
    }
    let mut parser = rxml::Parser::new();
    let mut guard = TreeGuard::new(limits);
    let mut data = frame.as_bytes();
    let mut element = None;
    loop {
        match parser.parse(&mut data, true) {
            Ok(Some(event)) => {
                if let Some(done) = guard.event(event)? {
                    element = Some(done);
                }
            }
            Ok(None) => break,
            Err(EndOrError::NeedMoreData) => {
                return Err(XmlError::Malformed("truncated element".into()));
            }
            Err(EndOrError::Error(e)) => return Err(XmlError::Malformed(e.to_string())),
        }
    }
    element.ok_or_else(|| XmlError::Malformed("no element in frame".into()))
}

/// Serializes an element as it goes on the wire.
pub fn to_string(element: &Element) -> String {
    String::from(element)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_stanza_bytes: 1024,
        max_depth: 8,
    };

    /// Every event in `data`.
    fn feed(parser: &mut StreamParser, mut data: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
        let mut out = Vec::new();
        while let Some(event) = parser.next(&mut data)? {
            out.push(event);
        }
        assert!(data.is_empty(), "input left unparsed");
        Ok(out)
    }

    fn feed_all(data: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
        feed(&mut StreamParser::new(LIMITS), data)
    }

    #[test]
    fn stream_yields_header_stanzas_and_close() {
        let events = feed_all(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
              xmlns:stream='http://etherx.jabber.org/streams' to='d' version='1.0'> \
              <message to='a@d'><body>hi</body></message> <iq type='get' id='1'/></stream:stream>",
        )
        .unwrap();
        assert!(matches!(&events[0], StreamEvent::Open(h) if h.attr("to") == Some("d")));
        let StreamEvent::Element(message) = &events[1] else {
            panic!()
        };
        assert!(message.is("message", "jabber:client"));
        assert_eq!(
            message.get_child("body", "jabber:client").unwrap().text(),
            "hi"
        );
        assert!(matches!(&events[2], StreamEvent::Element(iq) if iq.name() == "iq"));
        assert!(matches!(events[3], StreamEvent::Close));
    }

    #[test]
    fn split_input_is_reassembled() {
        let data = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><presence><status>x</status></presence>";
        let mut parser = StreamParser::new(LIMITS);
        let mut out = Vec::new();
        for chunk in data.chunks(3) {
            out.extend(feed(&mut parser, chunk).unwrap());
        }
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn what_follows_an_event_is_left_for_the_next_reader() {
        let mut parser = StreamParser::new(LIMITS);
        let mut data: &[u8] = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams'><starttls \
            xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01\x02\x00\x01";
        assert!(matches!(
            parser.next(&mut data),
            Ok(Some(StreamEvent::Open(_)))
        ));
        let Ok(Some(StreamEvent::Element(starttls))) = parser.next(&mut data) else {
            panic!("no <starttls/>");
        };
        assert_eq!(starttls.name(), "starttls");
        assert_eq!(data, b"\x16\x03\x01\x02\x00\x01", "the ClientHello");
        // Fed to the XML parser, the same bytes are malformed (the error seen before).
        assert!(matches!(
            parser.next(&mut data),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn depth_is_bounded_before_building() {
        let mut doc = String::from(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
        );
        doc.push_str(&"<a>".repeat(100));
        assert_eq!(feed_all(doc.as_bytes()).unwrap_err(), XmlError::TooDeep(8));
    }

    #[test]
    fn size_is_bounded_even_inside_one_start_tag() {
        let mut doc = String::from(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message ",
        );
        for i in 0..200 {
            doc.push_str(&format!("a{i}='xxxxxx' "));
        }
        assert_eq!(
            feed_all(doc.as_bytes()).unwrap_err(),
            XmlError::TooLarge(1024)
        );
    }

    #[test]
    fn entities_and_dtds_are_refused() {
        let bomb = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><stream:stream>&lol2;";
        assert!(matches!(
            feed_all(bomb.as_bytes()),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse_frame("<message>&lol;</message>", LIMITS),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn frame_parses_one_element() {
        let open = parse_frame(
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='d' version='1.0'/>",
            LIMITS,
        )
        .unwrap();
        assert!(open.is("open", "urn:ietf:params:xml:ns:xmpp-framing"));
        assert!(matches!(
            parse_frame("<a><b></a>", LIMITS),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse_frame(&"x".repeat(2000), LIMITS),
            Err(XmlError::TooLarge(_))
        ));
    }
}
