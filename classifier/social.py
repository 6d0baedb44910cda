"""Social turns: a message that only greets, thanks or says goodbye, so that it has no task to fail at.

The prompt classifier never saw such a message (the shortest training prompt is a 38-character task), so
its score there is extrapolation: `thanks!` scores about 0.75. The router's policy answers these turns on
the small tier instead (`routing.social_turns`). The match is deliberately narrow: the whole message,
after case, punctuation and emoji are set aside, must be social phrases and a few fillers. Bare
acknowledgements ("ok", "yes", "continue", "go on") are not social: in a conversation they ask for more
of the work.
"""

from __future__ import annotations

import re

MAX_WORDS = 12

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
    r"oh|ah|wow|well|and|so|really|very|much|you|u"
)
_UNIT = rf"(?:{_PHRASES}|{_FILLERS})"
_SOCIAL = re.compile(rf"(?:{_UNIT})(?: (?:{_UNIT}))*")
_PHRASE = re.compile(rf"\b(?:{_PHRASES})\b")
# Everything but letters, digits, spaces and apostrophes: punctuation, emoji, symbols.
_NOISE = re.compile(r"[^\w\s']|_")


def is_social_turn(text: str) -> bool:
    """True when `text` is only greetings, thanks, farewells or praise (at most MAX_WORDS words)."""
    normalised = " ".join(_NOISE.sub(" ", text.lower().replace("’", "'")).split())
    if not normalised or len(normalised.split()) > MAX_WORDS:
        return False
    return _SOCIAL.fullmatch(normalised) is not None and _PHRASE.search(normalised) is not None
