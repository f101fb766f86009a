"""The marker lexicon data file: parses, each entry once, and a repeat is refused."""
import pytest

from qwen_voice_ros.dialect.markers import (DIALECT_LABELS, LEXICON_PATH, MarkerLexicon,
                                            default_entries, parse_lexicon)


def test_shipped_lexicon_entries_are_unique_and_valid():
    entries = default_entries()
    assert len(entries) > 500
    keys = [entry.key for entry in entries]
    assert len(keys) == len(set(keys))
    # The literal is the prefilter: a plain entry's literal appears once across plain entries.
    plain = [entry.literal for entry in entries if entry.regex is None]
    assert len(plain) == len(set(plain)), sorted(p for p in plain if plain.count(p) > 1)
    for entry in entries:
        assert entry.weights and set(entry.weights) <= set(DIALECT_LABELS[1:])
        assert all(0 < w <= 3 for w in entry.weights.values())


def test_formerly_repeated_markers_count_once():
    lex = MarkerLexicon()
    assert lex.evidence('你在做啥子') == {'sichuanese': 3.0}
    # 咋整 3 (once, not 3 + 2.5) + 咋 0.7 + 整 1.5
    assert lex.evidence('这可咋整')['northeastern'] == pytest.approx(3.0 + 0.7 + 1.5)
    assert lex.evidence('唔系啩')['cantonese'] >= 3.0
    assert sum(1 for entry, _ in lex.matches('你在做啥子') if entry.literal == '啥子') == 1


def test_parse_refuses_repeats_and_bad_lines():
    with pytest.raises(ValueError, match='repeats'):
        parse_lexicon('啥子\tsichuanese:3\n啥子\tsichuanese:2.5\n')
    with pytest.raises(ValueError, match='unknown label'):
        parse_lexicon('啥子\tklingon:3\n')
    with pytest.raises(ValueError, match='literal<TAB>weights'):
        parse_lexicon('啥子 sichuanese:3\n')
    entries = parse_lexicon('# comment\n整\tnortheastern:1.5\t(?<!调)整(?!理)\n')
    assert entries[0].count('我整理了') == 0 and entries[0].count('你整啥') == 1


def test_lexicon_file_is_tab_separated_utf8():
    with open(LEXICON_PATH, encoding='utf-8') as handle:
        for line in handle:
            if line.strip() and not line.startswith('#'):
                assert '\t' in line and '  ' not in line.split('\t')[0]
