"""storage.pure.secret_forms: every echo form of a secret is found, in any text around it (hypothesis)."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.secret_forms import LONG_SECRET, MIN_FOLLOWED, SecretScrubber, echo_forms, is_followed

MARKER = "[redacted:0badc0de]"
MARKER_RE = re.compile(r"\[redacted:[0-9a-f]{8}\]")


def scrubber(*secrets: str) -> SecretScrubber:
    return SecretScrubber({secret: f"[redacted:{i:08x}]" for i, secret in enumerate(secrets)})


def visible(text: str) -> str:
    """The text with markers made into a character no secret here holds, so a secret cannot
    seem to appear across a marker's edge."""
    return MARKER_RE.sub("\x00", text)


# --- the encoders services use, and how they compose ------------------------------------------

URL_ENCODERS: dict[str, Callable[[str], str]] = {
    "quote all": lambda s: quote(s, safe=""),
    "quote (Python default)": quote,
    "quote_plus": quote_plus,
    "encodeURIComponent": lambda s: quote(s, safe="!'()*"),
    "encodeURI": lambda s: quote(s, safe=";,/?:@&=+$!'()*#"),
    "lower-case hex": lambda s: re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(s, safe="")),
}
JSON_ENCODERS: dict[str, Callable[[str], str]] = {
    "json ascii": lambda s: json.dumps(s)[1:-1],
    "json utf-8": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json escaped slash": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
}
BASE64_ENCODERS: dict[str, Callable[[str], str]] = {
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64url unpadded": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
}


def chain(*steps: Callable[[str], str]) -> Callable[[str], str]:
    def encode(value: str) -> str:
        for step in steps:
            value = step(value)
        return value

    return encode


url = st.sampled_from(sorted(URL_ENCODERS)).map(URL_ENCODERS.__getitem__)
json_escape = st.sampled_from(sorted(JSON_ENCODERS)).map(JSON_ENCODERS.__getitem__)
b64 = st.sampled_from(sorted(BASE64_ENCODERS)).map(BASE64_ENCODERS.__getitem__)

# The compositions storage.pure.secret_forms promises to find (its module doc).
encodings = st.one_of(
    st.just(lambda s: s),
    url,
    st.tuples(url, url).map(lambda p: chain(*p)),  # a URL in another URL's query
    st.lists(json_escape, min_size=1, max_size=3).map(lambda p: chain(*p)),  # JSON in JSON in JSON
    st.tuples(url, st.lists(json_escape, min_size=1, max_size=2)).map(lambda p: chain(p[0], *p[1])),  # URL in JSON
    st.tuples(json_escape, url).map(lambda p: chain(*p)),  # JSON in a query
    st.just(html.escape),
    b64,
    st.tuples(b64, url).map(lambda p: chain(*p)),
    st.tuples(b64, json_escape).map(lambda p: chain(*p)),
)

secrets = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00[]", exclude_categories=("Cs",)),
    min_size=MIN_FOLLOWED,
    max_size=40,
).filter(lambda s: is_followed(s))
filler = st.text(st.characters(codec="utf-8", exclude_characters="\x00[]", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=400, deadline=None)
@given(secrets, encodings, filler, filler)
def test_every_promised_form_is_found_anywhere(secret: str, encode: Callable[[str], str], before: str, after: str) -> None:
    form = encode(secret)
    text = before + form + after
    out = scrubber(secret).text(text)
    assert form not in visible(out)
    assert secret not in visible(out)
    assert "[redacted:00000000]" in out


@settings(max_examples=200, deadline=None)
@given(secrets, encodings, st.binary(max_size=40), st.binary(max_size=40))
def test_bytes_are_scrubbed_and_other_bytes_kept(secret: str, encode: Callable[[str], str], before: bytes, after: bytes) -> None:
    form = encode(secret).encode()
    out = scrubber(secret).bytes(before + form + after)
    assert form not in out.replace(b"[redacted:00000000]", b"\x00")
    assert out.startswith(before[: max(0, len(before) - len(form))])  # what precedes is untouched


def test_forms_of_a_plain_token_are_few_and_of_a_special_one_many() -> None:
    token = "tok_4f9c2a7e81b3"
    forms = echo_forms(token)
    assert forms[0] == token and base64.b64encode(token.encode()).decode() in forms
    assert len(forms) < 20
    special = 'p@ss w/"ö"+~'
    forms = echo_forms(special)
    for expected in (quote_plus(special), quote(special, safe=""), json.dumps(special)[1:-1],
                     json.dumps(json.dumps(special)[1:-1])[1:-1], html.escape(special)):  # fmt: skip
        assert expected in forms
    assert len(forms) == len(set(forms)) and forms[0] == special


def test_short_and_structural_values_are_not_followed() -> None:
    assert not is_followed("abc") and not is_followed("  ab  ") and not is_followed("true")
    assert not is_followed("Bearer") and not is_followed(MARKER)
    assert is_followed("1234") and is_followed("hunter2")
    scrub = scrubber("abc", "true", "hunter2")
    assert scrub.text("abc true hunter2") == "abc true [redacted:00000002]"
    assert not SecretScrubber({}) and not scrubber("abc")


def test_markers_stay_whole_even_when_a_secret_looks_like_part_of_one() -> None:
    text = f"x {MARKER} redacted y"
    assert scrubber("redacted").text(text) == f"x {MARKER} [redacted:00000000] y"


def test_the_longest_form_wins_and_overlapping_secrets_both_go() -> None:
    out = scrubber("abcd1234", "abcd1234xyz").text("--abcd1234xyz--abcd1234--")
    assert out == "--[redacted:00000001]--[redacted:00000000]--"


def test_a_secret_cut_in_two_at_the_end_of_a_cut_text_goes_too() -> None:
    scrub = scrubber("S3cretValue")
    assert scrub.text('{"echo": "S3cretVa', cut=True) == '{"echo": "[redacted:00000000]'
    assert scrub.text('{"echo": "S3cretVa') == '{"echo": "S3cretVa'  # not cut: not a secret
    assert scrub.text("S3c", cut=True) == "S3c"  # shorter than MIN_FOLLOWED: could be anything
    assert scrub.bytes(b"\xff\x00S3cretV", cut=True) == b"\xff\x00[redacted:00000000]"


def test_found_in_says_whether_bytes_hold_any_form() -> None:
    scrub = scrubber("S3cretValue")
    assert scrub.found_in(b"\x89PNG..." + base64.b64encode(b"S3cretValue") + b"...")
    assert not scrub.found_in(b"\x89PNG nothing here")


def test_a_value_inside_a_larger_base64_blob_is_found_at_any_alignment() -> None:
    secret = "S3cretValue-42"
    for prefix in ("", "a", "ab", "abc"):
        blob = base64.b64encode(f'{{"{prefix}": "{secret}"}}'.encode()).decode()
        assert scrubber(secret).text(blob) != blob, prefix


def test_hostile_secrets_cost_linear_time_and_bounded_memory() -> None:
    # A thousand values, each a prefix of the next: a backtracking matcher would take each
    # position as deep as the longest; the automaton does not. Their forms exceed the budget,
    # so the scrubber says it is not complete, and still follows each value as it is.
    values = ["q" * n for n in range(MIN_FOLLOWED, 1500)]
    scrub = SecretScrubber({value: f"[redacted:{n:08x}]" for n, value in enumerate(values)})
    assert not scrub.complete
    assert scrub.text("<" + "q" * 1499 + ">" + "q" * 7) == f"<[redacted:{len(values) - 1:08x}]>[redacted:00000003]"
    long_secret = "k" * (LONG_SECRET + 10)
    assert len(echo_forms(long_secret)) < 10 and scrubber(long_secret).text(f"x{long_secret}x") == "x[redacted:00000000]x"
