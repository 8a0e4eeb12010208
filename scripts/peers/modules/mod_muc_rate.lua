-- A per-occupant message interval for the rooms of one chat service of the
-- test instance, as prosody-modules' mod_muc_limits enforces (Debian does
-- not package that module): a groupchat message sent sooner than
-- muc_rate_interval seconds after the same occupant's previous one is
-- bounced with <error type='wait'><policy-violation/></error>.
local st = require "util.stanza";
local now = require "util.time".now;

local interval = module:get_option_number("muc_rate_interval", 0.2);
local last = {};

module:hook("muc-occupant-groupchat", function(event)
	local occupant = event.occupant;
	if not occupant or not event.stanza:get_child("body") then
		return;
	end
	local t = now();
	local prev = last[occupant.nick];
	if prev and t - prev < interval then
		event.origin.send(st.error_reply(event.stanza, "wait", "policy-violation",
			"The room is currently overactive, please try again later"));
		return true;
	end
	last[occupant.nick] = t;
end, 100);

module:hook("muc-occupant-left", function(event)
	if event.occupant then
		last[event.occupant.nick] = nil;
	end
end);
