package outbox

import "time"

// Learning a target's rate. A room (Prosody's mod_muc_limits, ejabberd's
// min_message_interval) or a server that enforces a rate answers a message
// sent too fast with <error type='wait'><resource-constraint/> or
// <policy-violation/>. The outbox then sends that message again after a
// backoff (HandleError) and spaces every later message to the target by a
// learned gap: the first bounce sets it to firstGap, each later bounce of a
// message sent under the current gap doubles it (messages already on the
// way when the gap grew bounce too, and say nothing new), and every
// gapDecayEvery messages without a bounce shrink it by an eighth, so the
// rate probes back up towards the limit. Nothing is lost to the limit: a
// bounced message goes out again, ahead of the target's later ones.
const (
	firstGap      = 100 * time.Millisecond
	maxGap        = 30 * time.Second
	gapDecayEvery = 16
)

// bounced updates sd for a bounce of a message written at sent, at now.
func (sd *slowdown) bounced(sent, now time.Time) {
	if !sd.raised.IsZero() && !sent.After(sd.raised) {
		return // on its way before the last increase: nothing new
	}
	sd.gap = min(max(sd.gap*2, firstGap), maxGap)
	sd.raised, sd.clean = now, 0
}

// resendDelay is how long a message bounced attempts times waits before it
// goes out again: firstSlow, doubling with each bounce of the same message
// (the gap paces the target's other messages).
func resendDelay(attempts int) time.Duration {
	return min(firstSlow<<min(max(attempts-1, 0), 10), maxSlow)
}

// took spaces the target's next message by the learned gap after one was
// taken to be written at now.
func (sd *slowdown) took(now time.Time) {
	if sd.gap <= 0 {
		return
	}
	if until := now.Add(sd.gap); until.After(sd.until) {
		sd.until = until
	}
	if sd.clean++; sd.clean >= gapDecayEvery {
		sd.clean = 0
		sd.gap -= sd.gap / 8
		if sd.gap < firstGap/4 {
			sd.gap = 0
		}
	}
}

// Gap returns the spacing the outbox learned for messages to target (0:
// none).
func (o *Outbox) Gap(target string) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if sd := o.slow[target]; sd != nil {
		return sd.gap
	}
	return 0
}

// requeueBouncedLocked puts a bounced item back into its queue, in its
// target's lane ahead of the later items to that target and behind the
// earlier ones (several may bounce in a row and are resent in their
// order). The caller holds mu and then gates the room lanes.
func (o *Outbox) requeueBouncedLocked(it *Item) {
	o.queueOf(it).insertByQueued(it)
}
