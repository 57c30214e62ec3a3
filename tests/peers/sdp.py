"""SDP offers rendered for aiortc, from the bridge's offer as the focus (Jingle) or the
bridge API (JSON) describes it; both peers turn their input into these plain shapes."""


def session(mids, sections):
    """A BUNDLE offer: the session lines, then each media section's lines."""
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", f"a=group:BUNDLE {' '.join(mids)}", "a=msid-semantic: WMS *"]
    for section in sections:
        lines += section
    return "\r\n".join(lines) + "\r\n"


def media_section(kind, mid, payload_types, transport, extensions, groups=(), sources=()):
    """One m-line's lines.

    payload_types: dicts with id, name, clockrate, channels (or None), parameters
        [(name, value)] and rtcp_fb [(type, subtype or None)];
    transport: dict with ufrag, pwd, fingerprints [(hash, value)], setup and candidates
        (dicts with foundation, component, protocol, priority, ip, port, typ);
    extensions: [(id, uri)]; groups: [(semantics, [ssrc])]; sources: [(ssrc, cname, msid)].
    """
    lines = [
        f"m={kind} 9 UDP/TLS/RTP/SAVPF {' '.join(str(p['id']) for p in payload_types)}",
        "c=IN IP4 0.0.0.0",
        f"a=ice-ufrag:{transport['ufrag']}",
        f"a=ice-pwd:{transport['pwd']}",
    ]
    lines += [f"a=fingerprint:{hash_} {value}" for hash_, value in transport["fingerprints"]]
    lines += [f"a=setup:{transport['setup']}", f"a=mid:{mid}", "a=sendrecv", "a=rtcp-mux"]
    for p in payload_types:
        channels = f"/{p['channels']}" if p.get("channels") else ""
        lines.append(f"a=rtpmap:{p['id']} {p['name']}/{p['clockrate']}{channels}")
        if p["parameters"]:
            lines.append(f"a=fmtp:{p['id']} {';'.join(f'{k}={v}' for k, v in p['parameters'])}")
        for fb_type, fb_subtype in p["rtcp_fb"]:
            lines.append(f"a=rtcp-fb:{p['id']} {fb_type}{' ' + fb_subtype if fb_subtype else ''}")
    lines += [f"a=extmap:{id_} {uri}" for id_, uri in extensions]
    for c in transport["candidates"]:
        lines.append(
            f"a=candidate:{c['foundation']} {c['component']} {c['protocol']} "
            f"{c['priority']} {c['ip']} {c['port']} typ {c['typ']}"
        )
    for semantics, ssrcs in groups:
        lines.append(f"a=ssrc-group:{semantics} {' '.join(str(s) for s in ssrcs)}")
    for ssrc, cname, msid in sources:
        lines += [f"a=ssrc:{ssrc} cname:{cname}", f"a=ssrc:{ssrc} msid:{msid}"]
    return lines
