// crier web chat: a small XMPP client that talks to a server over BOSH
// (XEP-0124/XEP-0206), or over WebSocket (RFC 7395) for a ws:// or wss://
// URL, with Strophe.js. It logs in, joins one multi-user chat
// room, chats one-to-one with the bot, and reconnects with backoff when the
// connection drops.
//
// Every piece of text that comes from the network is put on the page with
// textContent, never with innerHTML, so a message body is always shown as
// text and never interpreted as markup.
//
// Query parameters prefill the form: ?bosh=URL&jid=JID&room=JID&nick=N
// &botnick=N&botjid=JID, and ?debug=1 logs the raw XML to the console.
(function () {
  'use strict';

  const NS_MUC = 'http://jabber.org/protocol/muc';
  const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
  const NS_DELAY = 'urn:xmpp:delay';
  const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

  // Reconnect delays grow from MIN_DELAY and double on each failed attempt
  // up to MAX_DELAY; each delay is randomised between half and all of it so
  // that many pages dropped at once do not come back in step.
  const MIN_DELAY = 1000;
  const MAX_DELAY = 30000;

  // Conditions after which retrying cannot help.
  const FATAL = new Set(['x-strophe-bad-non-anon-jid', 'no-auth-mech']);

  const el = (id) => document.getElementById(id);
  const ui = {
    status: el('status'),
    loginForm: el('login-form'),
    jid: el('jid'),
    password: el('password'),
    bosh: el('bosh-url'),
    connect: el('connect'),
    disconnect: el('disconnect'),
    roomForm: el('room-form'),
    room: el('room'),
    nick: el('nick'),
    join: el('join'),
    leave: el('leave'),
    roomState: el('room-state'),
    botNick: el('bot-nick'),
    botJid: el('bot-jid'),
    messages: el('messages'),
    sendForm: el('send-form'),
    sendTo: el('send-to'),
    message: el('message'),
    send: el('send'),
  };

  const params = new URLSearchParams(location.search);
  const debug = params.get('debug') === '1';

  const state = {
    conn: null, // the current Strophe.Connection
    gen: 0, // generation of conn; callbacks of older connections are ignored
    wanted: false, // the user asked to be connected: reconnect on a drop
    attempt: 0, // failed attempts since the last successful login
    retryTimer: null,
    creds: null, // {jid, password, bosh} of the current login
    room: null, // {jid, nick} of the room the user wants to be in
    joined: false, // the room confirmed our presence (status 110)
    occupants: new Set(),
    lastCondition: '', // why the current connection failed, for the next DISCONNECTED
    seen: [], // {nick, body, time} of the last room messages shown
  };

  // A room replays its recent history on every join, so after a reconnect
  // the page would show again what it already showed. A delayed message with
  // the sender and body of a message shown at about the same time is one of
  // those and is skipped.
  const SEEN_MAX = 100;
  const SEEN_SLACK_MS = 5000;

  function alreadySeen(nick, body, time) {
    return state.seen.some((m) =>
      m.nick === nick && m.body === body && Math.abs(m.time - time) <= SEEN_SLACK_MS);
  }

  function remember(nick, body, time) {
    state.seen.push({ nick: nick, body: body, time: time.getTime() });
    if (state.seen.length > SEEN_MAX) {
      state.seen.shift();
    }
  }

  // ---- helpers ---------------------------------------------------------

  function bare(jid) {
    return Strophe.getBareJidFromJid(jid || '').toLowerCase();
  }

  function resource(jid) {
    return Strophe.getResourceFromJid(jid || '') || '';
  }

  function localpart(jid) {
    return Strophe.getNodeFromJid(jid || '') || '';
  }

  // child returns the first child element of parent named name (and in
  // namespace ns when given), or null.
  function child(parent, name, ns) {
    for (const c of parent.children) {
      if (c.localName === name && (!ns || c.namespaceURI === ns)) {
        return c;
      }
    }
    return null;
  }

  // text returns the plain text of a child element, or '' when absent.
  // DOM textContent is used, not Strophe.getText, which returns the text
  // XML-escaped.
  function text(parent, name, ns) {
    const c = child(parent, name, ns);
    return c ? c.textContent : '';
  }

  function statusCodes(stanza) {
    const x = child(stanza, 'x', NS_MUC_USER);
    const codes = new Set();
    if (x) {
      for (const s of x.children) {
        if (s.localName === 'status') {
          codes.add(s.getAttribute('code'));
        }
      }
    }
    return codes;
  }

  function errorText(stanza) {
    const e = child(stanza, 'error');
    if (!e) {
      return 'unknown error';
    }
    let cond = '';
    let desc = '';
    for (const c of e.children) {
      if (c.namespaceURI === NS_STANZAS && c.localName === 'text') {
        desc = c.textContent;
      } else if (!cond) {
        cond = c.localName;
      }
    }
    return desc ? cond + ': ' + desc : cond || 'unknown error';
  }

  function botNick() {
    return ui.botNick.value.trim();
  }

  function botJid() {
    return bare(ui.botJid.value.trim());
  }

  // ---- rendering -------------------------------------------------------

  function span(cls, content) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = content;
    return s;
  }

  function timeOf(stanza) {
    const d = stanza && child(stanza, 'delay', NS_DELAY);
    const t = d ? new Date(d.getAttribute('stamp')) : new Date();
    return isNaN(t) ? new Date() : t;
  }

  // addLine appends one entry to the message list. kind is a list of CSS
  // classes (msg-groupchat, msg-bot, ...); every string argument is set as
  // text.
  function addLine(kinds, who, body, opts) {
    opts = opts || {};
    const nearBottom =
      ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 40;
    const li = document.createElement('li');
    li.className = ['msg'].concat(kinds).join(' ');
    const when = opts.time || new Date();
    const time = span('msg-time', when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    time.title = when.toLocaleString();
    li.append(time);
    if (opts.where) {
      li.append(span('msg-where', opts.where));
    }
    if (who) {
      li.append(span('msg-from', who));
    }
    if (opts.subject) {
      li.append(span('msg-subject', opts.subject));
    }
    if (body) {
      li.append(span('msg-body', body));
    }
    ui.messages.append(li);
    if (nearBottom) {
      ui.messages.scrollTop = ui.messages.scrollHeight;
    }
    return li;
  }

  function system(textContent, kind) {
    addLine(['msg-system'].concat(kind ? [kind] : []), '', textContent);
  }

  function setStatus(st, label) {
    ui.status.dataset.state = st;
    ui.status.textContent = label;
  }

  function refreshControls() {
    const online = state.conn !== null && state.conn.authenticated && state.conn.connected;
    const busy = state.wanted;
    ui.connect.disabled = busy;
    ui.disconnect.disabled = !busy;
    for (const f of [ui.jid, ui.password, ui.bosh]) {
      f.disabled = busy;
    }
    ui.join.disabled = !online || state.room !== null;
    ui.leave.disabled = !online || state.room === null;
    ui.room.disabled = state.room !== null;
    ui.nick.disabled = state.room !== null;
    ui.message.disabled = !online;
    ui.send.disabled = !online;
    if (state.joined) {
      const people = Array.from(state.occupants).sort((a, b) => a.localeCompare(b));
      ui.roomState.dataset.state = 'in';
      ui.roomState.textContent =
        'in ' + state.room.jid + ' as ' + state.room.nick + ' (' + people.length + ' here: ' + people.join(', ') + ')';
    } else if (state.room) {
      ui.roomState.dataset.state = 'joining';
      ui.roomState.textContent = 'joining ' + state.room.jid + '…';
    } else {
      ui.roomState.dataset.state = 'out';
      ui.roomState.textContent = 'not in a room';
    }
  }

  // ---- incoming stanzas ------------------------------------------------

  function onMessage(msg) {
    const type = msg.getAttribute('type') || 'normal';
    const from = msg.getAttribute('from') || '';
    const body = text(msg, 'body');
    const subject = text(msg, 'subject');
    const delayed = child(msg, 'delay', NS_DELAY) !== null;
    const time = timeOf(msg);
    const fromBare = bare(from);
    const inRoom = state.room !== null && fromBare === bare(state.room.jid);
    const kinds = delayed ? ['msg-delayed'] : [];

    if (type === 'error') {
      system('error from ' + from + ': ' + errorText(msg), 'msg-error');
      return true;
    }
    if (type === 'groupchat') {
      const nick = resource(from);
      if (!nick) {
        // The room itself speaks: a subject change or a status notice.
        if (subject) {
          addLine(kinds.concat(['msg-system', 'msg-topic']), '', 'Room subject: ' + subject, { time: time });
        } else if (body) {
          addLine(kinds.concat(['msg-system']), '', body, { time: time });
        }
        return true;
      }
      if (!body) {
        if (child(msg, 'subject') !== null) {
          addLine(kinds.concat(['msg-system', 'msg-topic']), '',
            nick + (subject ? ' set the subject: ' + subject : ' cleared the subject'), { time: time });
        }
        return true;
      }
      if (delayed && alreadySeen(nick, body, time.getTime())) {
        return true;
      }
      remember(nick, body, time);
      kinds.push('msg-groupchat');
      if (inRoom && nick === state.room.nick) {
        kinds.push('msg-self');
      }
      if (inRoom && nick === botNick()) {
        kinds.push('msg-bot');
      }
      addLine(kinds, nick, body, { time: time });
      return true;
    }
    if (type === 'headline') {
      if (!body && !subject) {
        return true;
      }
      kinds.push('msg-headline');
      let who = fromBare;
      if (fromBare === botJid()) {
        kinds.push('msg-bot');
        who = localpart(from);
      } else if (inRoom) {
        who = resource(from) || fromBare;
        if (who === botNick()) {
          kinds.push('msg-bot');
        }
      }
      addLine(kinds, who, body, { time: time, subject: subject || '(no subject)', where: 'headline' });
      return true;
    }
    // chat and normal messages
    if (!body) {
      return true; // chat states and receipts carry no body
    }
    kinds.push('msg-chat');
    let who = fromBare === botJid() ? localpart(from) : bare(from);
    if (inRoom) {
      // A private message from a room occupant.
      who = resource(from);
      if (who === botNick()) {
        kinds.push('msg-bot');
      }
    } else if (fromBare === botJid()) {
      kinds.push('msg-bot');
    }
    addLine(kinds, who, body, { time: time, where: 'private', subject: subject || undefined });
    return true;
  }

  function onPresence(pres) {
    const from = pres.getAttribute('from') || '';
    const type = pres.getAttribute('type') || '';
    if (!state.room || bare(from) !== bare(state.room.jid)) {
      return true;
    }
    const nick = resource(from);
    const codes = statusCodes(pres);
    const self = codes.has('110') || nick === state.room.nick;

    if (type === 'error') {
      if (!state.joined) {
        system('could not join ' + state.room.jid + ': ' + errorText(pres), 'msg-error');
        state.room = null;
        state.occupants.clear();
        refreshControls();
      } else {
        system('room error: ' + errorText(pres), 'msg-error');
      }
      return true;
    }
    if (type === 'unavailable') {
      if (codes.has('303')) {
        // A nickname change: the new nick arrives in the next presence.
        const x = child(pres, 'x', NS_MUC_USER);
        const item = x && child(x, 'item');
        const newNick = item ? item.getAttribute('nick') : '';
        state.occupants.delete(nick);
        if (self && newNick) {
          state.room.nick = newNick;
        }
        system(nick + ' is now known as ' + (newNick || '?'));
        refreshControls();
        return true;
      }
      state.occupants.delete(nick);
      if (self) {
        let why = 'you left ' + state.room.jid;
        if (codes.has('307')) {
          why = 'you were kicked from ' + state.room.jid;
        } else if (codes.has('301')) {
          why = 'you were banned from ' + state.room.jid;
        } else if (codes.has('332')) {
          why = 'the room service is shutting down';
        }
        system(why, codes.has('307') || codes.has('301') ? 'msg-error' : '');
        state.room = null;
        state.joined = false;
        state.occupants.clear();
      } else if (state.joined) {
        system(nick + ' left');
      }
      refreshControls();
      return true;
    }
    // Available presence.
    const known = state.occupants.has(nick);
    state.occupants.add(nick);
    if (codes.has('110') || (self && !state.joined)) {
      if (!state.joined) {
        state.joined = true;
        state.room.nick = nick;
        system('you joined ' + state.room.jid + ' as ' + nick);
      }
    } else if (state.joined && !known) {
      system(nick + ' joined');
    }
    refreshControls();
    return true;
  }

  // ---- connection --------------------------------------------------------

  function sendRoomJoin() {
    const p = $pres({ to: state.room.jid + '/' + state.room.nick })
      .c('x', { xmlns: NS_MUC })
      .c('history', { maxstanzas: '20' });
    state.conn.send(p.tree());
  }

  function onConnected(conn) {
    state.attempt = 0;
    setStatus('connected', 'connected as ' + conn.jid);
    conn.addHandler(onMessage, null, 'message');
    conn.addHandler(onPresence, null, 'presence');
    conn.send($pres().tree()); // initial presence
    if (state.room) {
      // Rejoin after a reconnect; the room sends our presence again.
      state.joined = false;
      state.occupants.clear();
      sendRoomJoin();
    }
    refreshControls();
  }

  function scheduleReconnect(reason) {
    clearTimeout(state.retryTimer);
    state.attempt++;
    const full = Math.min(MAX_DELAY, MIN_DELAY * Math.pow(2, state.attempt - 1));
    const delay = Math.round(full / 2 + (Math.random() * full) / 2);
    state.joined = false;
    state.occupants.clear();
    setStatus('reconnecting',
      'reconnecting in ' + Math.ceil(delay / 1000) + ' s (attempt ' + state.attempt + ')' + (reason ? ': ' + reason : ''));
    state.retryTimer = setTimeout(connect, delay);
    refreshControls();
  }

  // onStatus handles the status changes of connection number gen.
  function onStatus(gen, conn, status, condition) {
    if (gen !== state.gen) {
      return; // a connection we already gave up on
    }
    const S = Strophe.Status;
    switch (status) {
      case S.CONNECTING:
        setStatus(state.attempt > 0 ? 'reconnecting' : 'connecting',
          (state.attempt > 0 ? 'reconnecting' : 'connecting') + ' to ' + state.creds.bosh + '…');
        break;
      case S.AUTHENTICATING:
        setStatus(state.attempt > 0 ? 'reconnecting' : 'connecting', 'logging in…');
        break;
      case S.CONNECTED:
        onConnected(conn);
        break;
      case S.AUTHFAIL:
        state.wanted = false;
        state.lastCondition = 'authfail';
        setStatus('failed', 'login failed: wrong JID or password');
        system('login failed for ' + state.creds.jid + ': wrong JID or password', 'msg-error');
        break;
      case S.CONNFAIL:
      case S.CONNTIMEOUT:
        state.lastCondition = condition || (status === S.CONNTIMEOUT ? 'timeout' : 'connection failed');
        if (FATAL.has(condition)) {
          state.wanted = false;
          setStatus('failed', 'connection failed: ' + condition);
          system('connection failed: ' + condition, 'msg-error');
        }
        break;
      case S.DISCONNECTING:
        setStatus('disconnecting', 'disconnecting…');
        break;
      case S.DISCONNECTED: {
        const reason = state.lastCondition || condition || '';
        state.lastCondition = '';
        state.conn = null;
        state.gen++; // ignore anything the old connection still reports
        if (state.wanted) {
          system('connection lost' + (reason ? ' (' + reason + ')' : '') + '; reconnecting', 'msg-error');
          scheduleReconnect(reason);
        } else {
          state.joined = false;
          state.occupants.clear();
          if (ui.status.dataset.state !== 'failed') {
            setStatus('disconnected', 'disconnected');
          }
        }
        break;
      }
      default:
        break;
    }
    refreshControls();
  }

  function connect() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    const gen = ++state.gen;
    const conn = new Strophe.Connection(state.creds.bosh);
    if (debug) {
      conn.rawInput = (data) => console.debug('RECV', data);
      conn.rawOutput = (data) => console.debug('SEND', data);
    }
    state.conn = conn;
    conn.connect(state.creds.jid, state.creds.password, (status, condition) =>
      onStatus(gen, conn, status, condition));
    refreshControls();
  }

  function disconnect() {
    state.wanted = false;
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    const conn = state.conn;
    if (conn && conn.connected) {
      if (state.room && state.joined) {
        conn.send($pres({ to: state.room.jid + '/' + state.room.nick, type: 'unavailable' }).tree());
      }
      conn.flush();
      conn.disconnect('user left');
    } else {
      state.gen++;
      state.conn = null;
      setStatus('disconnected', 'disconnected');
    }
    state.room = null;
    state.joined = false;
    state.occupants.clear();
    refreshControls();
  }

  // ---- form handlers ---------------------------------------------------

  ui.loginForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const jid = ui.jid.value.trim();
    if (!localpart(jid)) {
      setStatus('failed', 'enter a JID such as alice@localhost');
      return;
    }
    state.creds = {
      jid: jid,
      password: ui.password.value,
      bosh: ui.bosh.value.trim() || defaultBOSH(),
    };
    if (!ui.nick.value.trim()) {
      ui.nick.value = localpart(jid);
    }
    state.wanted = true;
    state.attempt = 0;
    connect();
  });

  ui.disconnect.addEventListener('click', disconnect);

  ui.roomForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = bare(ui.room.value.trim());
    const nick = ui.nick.value.trim() || localpart(state.creds ? state.creds.jid : '');
    if (!room || !localpart(room) || !nick || !state.conn) {
      return;
    }
    state.room = { jid: room, nick: nick };
    state.joined = false;
    state.occupants.clear();
    sendRoomJoin();
    refreshControls();
  });

  ui.leave.addEventListener('click', () => {
    if (state.room && state.conn) {
      state.conn.send($pres({ to: state.room.jid + '/' + state.room.nick, type: 'unavailable' }).tree());
    }
    if (state.room) {
      system('you left ' + state.room.jid);
    }
    state.room = null;
    state.joined = false;
    state.occupants.clear();
    refreshControls();
  });

  ui.sendForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = ui.message.value;
    if (!body.trim() || !state.conn) {
      return;
    }
    if (ui.sendTo.value === 'room') {
      if (!state.joined) {
        system('join a room first, or send to the bot', 'msg-error');
        return;
      }
      // Not shown here: the room echoes it back to every occupant, us included.
      state.conn.send($msg({ to: state.room.jid, type: 'groupchat' }).c('body').t(body).tree());
    } else {
      const to = botJid();
      if (!to) {
        system('set the bot JID first', 'msg-error');
        return;
      }
      state.conn.send($msg({ to: to, type: 'chat' }).c('body').t(body).tree());
      addLine(['msg-chat', 'msg-self'], 'to ' + localpart(to), body, { where: 'private' });
    }
    ui.message.value = '';
  });

  window.addEventListener('pagehide', () => {
    if (state.conn && state.conn.connected) {
      state.wanted = false;
      state.conn.disconnect('page closed');
    }
  });

  // ---- start -----------------------------------------------------------

  function defaultBOSH() {
    if (location.protocol === 'http:' || location.protocol === 'https:') {
      return location.origin + '/http-bind';
    }
    return '';
  }

  const prefill = [
    ['bosh', ui.bosh],
    ['jid', ui.jid],
    ['room', ui.room],
    ['nick', ui.nick],
    ['botnick', ui.botNick],
    ['botjid', ui.botJid],
  ];
  for (const [key, input] of prefill) {
    if (params.has(key)) {
      input.value = params.get(key);
    }
  }
  if (!ui.bosh.value) {
    ui.bosh.value = defaultBOSH();
  }
  if (typeof Strophe === 'undefined') {
    setStatus('failed', 'Strophe.js did not load (vendor/strophe.umd.min.js)');
    ui.connect.disabled = true;
    return;
  }
  refreshControls();
})();
