"""Languages of the web application: Polish first, English on request.

Templates and web messages are written with English msgids and translated by gettext
catalogues in `api/web/locale/<lang>/LC_MESSAGES/messages.po` (extracted and compiled with
Babel; `scripts/web.sh` compiles the `.mo` files). A missing or stale `.mo` is compiled in
memory from its `.po` at start, so a fresh checkout never shows untranslated pages.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.requests import Request

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("pl", "en")  # the first is the default
SOURCE_LANGUAGE = "en"  # the msgids
LANG_COOKIE = "ezd_lang"
LANGUAGE_NAMES = {"pl": "Polski", "en": "English"}


@cache
def translations(lang: str) -> NullTranslations:
    if lang == SOURCE_LANGUAGE:
        return NullTranslations()
    folder = LOCALE_DIR / lang / "LC_MESSAGES"
    po, mo = folder / "messages.po", folder / "messages.mo"
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as f:
            return Translations(f)
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def choose_language(request: Request) -> str:
    """The language cookie, else the best Accept-Language match, else Polish."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    best, best_q = LANGUAGES[0], -1.0
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower()[:2]
        if lang not in LANGUAGES:
            continue
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = lang, q
    return best


def gettext_for(lang: str) -> NullTranslations:
    return translations(lang if lang in LANGUAGES else LANGUAGES[0])
