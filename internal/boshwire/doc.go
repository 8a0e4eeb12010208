// Package boshwire holds the wire format shared by the BOSH client
// (transport/bosh) and the mini server's BOSH connection manager
// (internal/miniserver/boshcm): the <body/> wrapper of XEP-0124/XEP-0206 and
// a cutter that splits a byte stream with stream restarts into top-level
// elements. It imports only the standard library and internal/xmlsplit, so
// that the mini server may use it.
//
// Reading a <body/> received over HTTP:
//
//	b, err := boshwire.ParseBody(data)
//	if err != nil {
//		// errors.Is(err, boshwire.ErrBody)
//	}
//	rid, err := b.RID()
//	wait := b.IntAttr("wait", 60)
//	for _, c := range b.Children {
//		if boshwire.IsStanza(c.Name) {
//			// c.Raw is the stanza, byte for byte
//		}
//	}
//
// Cutting what one side writes into elements to wrap in the next <body/>:
//
//	var cut boshwire.Cutter
//	evs, err := cut.Feed(p)
//	for _, ev := range evs {
//		if ev.Kind == xmlsplit.Element {
//			payload = append(payload, boshwire.WithClientNS(ev)...)
//		}
//	}
package boshwire
