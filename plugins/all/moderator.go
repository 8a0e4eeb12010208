package all

// moderator keeps game chats clean: floods, spam, evasions, escalation.
import _ "crier/plugins/moderator"
