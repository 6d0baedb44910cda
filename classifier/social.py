"""Social turns: a message that only greets, thanks or says goodbye, so that it has no task to fail at.

The prompt classifier never saw such a message (the shortest training prompt is a 38-character task), so
its score there is extrapolation: `thanks!` scores about 0.75. The router's policy answers these turns on
the small tier instead (`routing.social_turns`). The match is deliberately narrow: the whole message,
after case, punctuation and emoji are set aside, must be social phrases and a few fillers. Bare
acknowledgements ("ok", "yes", "continue", "go on") are not social: in a conversation they ask for more
of the work. Those are continuations (`is_continuation`): they have no task of their own either, so they
are scored as the user turn they continue (classifier.text), and go where that task went.
"""

from __future__ import annotations

import re

MAX_WORDS = 12
# Longer texts are never checked word by word: on the request path a 200,000-character prompt must not pay
# for normalising itself (12 social words with their punctuation and emoji fit well within this).
MAX_CHARS = 300

_PHRASES = (
    # greetings
    r"hi|hello|hey|hiya|howdy|greetings|yo|good (morning|afternoon|evening|day)|hola|bonjour|ciao|hallo|"
    r"how are (you|u)( doing)?( today)?|how is it going|how's it going|what's up|whats up|sup|"
    # thanks
    r"thanks|thank (you|u)|thx|ty|tysm|cheers|many thanks|much appreciated|(i )?appreciate (it|that)|"
    r"merci|gracias|danke|grazie|obrigad[oa]|"
    # farewells
    r"bye|goodbye|good bye|bye bye|good night|see (you|ya)( later| soon| tomorrow)?|later|take care|"
    r"have a (nice|good|great|lovely) (day|evening|night|weekend|one)|"
    # praise of the previous answer
    r"(that|this|it) (helped|helps|works|worked)|(that|this|it)('s| is| was) (great|perfect|helpful|"
    r"very helpful|awesome|amazing|brilliant|exactly what i needed)|great|perfect|awesome|amazing|"
    r"brilliant|wonderful|nice|cool|excellent|fantastic|lovely|sweet"
)
_FILLERS = (
    r"so much|a lot|a bunch|very much|again|too|there|all|everyone|folks|friend|mate|buddy|man|"
    r"for (your|the|all the|all your) (help|answer|reply|explanation|time)|for that|for this|"
    r"oh|ah|wow|well|and|so|really|very|much|you|u|ok|okay|alright"
)
_UNIT = rf"(?:{_PHRASES}|{_FILLERS})"
_SOCIAL = re.compile(rf"(?:{_UNIT})(?: (?:{_UNIT}))*")
_PHRASE = re.compile(rf"\b(?:{_PHRASES})\b")
# Everything but letters, digits, spaces and apostrophes: punctuation, emoji, symbols.
_NOISE = re.compile(r"[^\w\s']|_")


def is_social_turn(text: str) -> bool:
    """True when `text` is only greetings, thanks, farewells or praise (at most MAX_WORDS words)."""
    if len(text) > MAX_CHARS:
        return False
    normalised = " ".join(_NOISE.sub(" ", text.lower().replace("’", "'")).split())
    if not normalised or len(normalised.split()) > MAX_WORDS:
        return False
    return _SOCIAL.fullmatch(normalised) is not None and _PHRASE.search(normalised) is not None


CONTINUATION_MAX_WORDS = 8
_GO_ON = (
    r"continue|go on|keep going|carry on|proceed|go ahead|more|next|finish|finish (it|that|this|up)|"
    r"the rest|keep it coming|don't stop|dont stop|resume|and then|then|and|"
    r"(yes|yeah|yep|yup|sure|ok|okay|k|alright|fine|right|please)( (do|please))?|"
    r"(do|write|show|give me|send) (it|that|this|the rest|more)|do so|please do|"
    r"let's do (it|that)|lets do (it|that)|sounds good|go for it|"
    r"ja|oui|si|weiter|continuer|continua|sigue"
)
_GO_ON_FILLERS = r"please|pls|plz|then|now|and|so|on|just|from there|(from )?where you (left off|stopped)"
_GO_ON_UNIT = rf"(?:{_GO_ON}|{_GO_ON_FILLERS})"
_CONTINUATION = re.compile(rf"(?:{_GO_ON_UNIT})(?: (?:{_GO_ON_UNIT}))*")
_GO_ON_PHRASE = re.compile(rf"\b(?:{_GO_ON})\b")


def is_continuation(text: str) -> bool:
    """True when `text` only asks to go on with the work in hand ("continue", "yes, do it", "ok, next"): at
    most CONTINUATION_MAX_WORDS words of such phrases, with no task of its own."""
    if len(text) > MAX_CHARS:
        return False
    normalised = " ".join(_NOISE.sub(" ", text.lower().replace("’", "'")).split())
    if not normalised or len(normalised.split()) > CONTINUATION_MAX_WORDS:
        return False
    return _CONTINUATION.fullmatch(normalised) is not None and _GO_ON_PHRASE.search(normalised) is not None
