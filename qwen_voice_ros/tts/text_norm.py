"""
Text normalisation before TTS: what a Chinese reader says for digits, dates and symbols.

``normalize('2024年3月5日 10:30，气温-5℃，湿度60%，GPS 2.5km')`` ->
``二零二四年三月五日 十点三十分，气温零下五摄氏度，湿度百分之六十，GPS 二点五公里``.

Rules, applied in this order (each a regular expression and a reader; the table-driven test
``test/test_tts_text_norm.py`` lists the cases): full-width ASCII -> half-width; emoji and
other pictographs removed; dates (``2024年3月5日``, ``2024-03-05``, ``2024/3/5``), times
(``10:30``, ``8:05:09``), percentages and permille, currency (``¥`` ``$`` ``€`` ``£``),
temperatures, numbers followed by a unit (km, kg, cm, GB, km/h, ...), fractions (``3/4``),
ranges (``3-5``, ``3~5``), phone-like digit strings (read digit by digit), decimals and
integers (with 两 before a measure word), then maths and other symbols (``+ = & @ # × ÷``).
English words stay English: a backend with an English front end (Kokoro) reads them as
English.  Pure Python, no dependencies.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable, List, Match, Tuple

DIGITS = '零一二三四五六七八九'
_SMALL = ((1000, '千'), (100, '百'), (10, '十'))
_BIG = ((10 ** 12, '兆'), (10 ** 8, '亿'), (10 ** 4, '万'))

UNITS = {
    'km/h': '公里每小时', 'm/s': '米每秒', 'km²': '平方公里', 'm²': '平方米', 'm³': '立方米',
    'km': '公里', 'cm': '厘米', 'mm': '毫米', 'nm': '纳米', 'm': '米',
    'kg': '千克', 'mg': '毫克', 'g': '克', 't': '吨',
    'ml': '毫升', 'mL': '毫升', 'L': '升', 'l': '升',
    'kWh': '千瓦时', 'kW': '千瓦', 'W': '瓦', 'V': '伏', 'mAh': '毫安时', 'mA': '毫安', 'A': '安',
    'Hz': '赫兹', 'kHz': '千赫兹', 'MHz': '兆赫兹', 'GHz': '吉赫兹', 'dB': '分贝',
    'KB': 'KB', 'MB': '兆', 'GB': 'G', 'TB': 'T',
    'ms': '毫秒', 's': '秒', 'min': '分钟', 'h': '小时',
    '℃': '摄氏度', '°C': '摄氏度', '°F': '华氏度', '°': '度',
    'rpm': '转每分钟',
}
CURRENCY = {'¥': '元', '￥': '元', '$': '美元', '€': '欧元', '£': '英镑'}
SYMBOLS = [
    ('‰', '千分之'), ('+', '加'), ('=', '等于'), ('×', '乘'), ('÷', '除以'), ('&', '和'),
    ('@', ' at '), ('#', '号'), ('~', '到'), ('～', '到'), ('<', '小于'), ('>', '大于'),
    ('≤', '小于等于'), ('≥', '大于等于'), ('±', '正负'), ('%', '百分号'), ('/', '每'),
    ('*', ' '), ('_', ' '), ('|', ' '), ('^', ' '), ('\\', ' '),
]
# Measure words after which 2 is read 两 (两个, 两点, 两天...).
LIANG_BEFORE = set('个位只条张本件次天年岁台辆点种名层块把双对份家')

_NUM = r'\d+(?:\.\d+)?'
_EMOJI = re.compile('[\U0001F000-\U0001FAFF\U00002600-\U000027BF\U0001F900-\U0001F9FF'
                    '\U0000FE0F\U0000200D\U000E0020-\U000E007F\U00002B00-\U00002BFF]')


def read_int(digits: str) -> str:
    """Read a non-negative integer string the Chinese way: 1005 -> 一千零五, 10 -> 十."""
    value = int(digits)
    if value == 0:
        return '零'
    if value >= 10 ** 16:
        return read_digits(digits)
    out = _read_group_big(value)
    if out.startswith('一十'):
        out = out[1:]
    return out


def _read_group_big(value: int) -> str:
    for size, name in _BIG:
        if value >= size:
            high, low = divmod(value, size)
            text = _read_group_big(high) + name
            if low:
                text += ('零' if low < size // 10 else '') + _read_group_big(low)
            return text
    return _read_small(value)


def _read_small(value: int) -> str:
    """0 < value < 10000."""
    out, zero = '', False
    for size, name in _SMALL:
        digit, value = divmod(value, size)
        if digit:
            if zero:
                out += '零'
            out += DIGITS[digit] + name
            zero = False
        elif out:
            zero = True
    if value:
        out += ('零' if zero else '') + DIGITS[value]
    return out


def read_digits(digits: str) -> str:
    """Digit by digit (years, phone numbers): 2024 -> 二零二四."""
    return ''.join(DIGITS[int(d)] for d in digits if d.isdigit())


def read_number(text: str) -> str:
    """Read ``-12.5`` -> 负十二点五; ``0.05`` -> 零点零五; leading-zero integers digit by digit."""
    sign = ''
    if text[:1] in '-−':
        sign, text = '负', text[1:]
    text = text.replace(',', '')
    whole, _, frac = text.partition('.')
    if len(whole) > 1 and whole.startswith('0'):
        out = read_digits(whole)
    else:
        out = read_int(whole or '0')
    if frac:
        out += '点' + read_digits(frac)
    return sign + out


def _date(m: Match) -> str:
    year, month, day = m.group('y'), m.group('m'), m.group('d')
    out = read_digits(year) + '年' if year else ''
    if month:
        out += read_int(month) + '月'
    if day:
        out += read_int(day) + (m.group('suffix') or '日')
    return out


def _time(m: Match) -> str:
    hour, minute, second = int(m.group(1)), int(m.group(2)), m.group(3)
    out = ('两' if hour == 2 else read_int(str(hour))) + '点'
    if minute or second:
        out += ('零' if minute < 10 else '') + read_int(str(minute)) + '分'
    if second and int(second):
        out += ('零' if int(second) < 10 else '') + read_int(second) + '秒'
    return out


def _percent(m: Match) -> str:
    return ('千分之' if m.group(2) == '‰' else '百分之') + read_number(m.group(1))


def _currency(m: Match) -> str:
    return read_number(m.group(2)) + CURRENCY[m.group(1)]


def _temperature(m: Match) -> str:
    value = m.group(1)
    prefix = ''
    if value[:1] in '-−':
        prefix, value = '零下', value[1:]
    return prefix + read_number(value) + UNITS[m.group(2)]


def _unit(m: Match) -> str:
    return read_number(m.group(1)) + UNITS[m.group(2)]


def _fraction(m: Match) -> str:
    return read_number(m.group(2)) + '分之' + read_number(m.group(1))


def _range(m: Match) -> str:
    return read_number(m.group(1)) + '到' + read_number(m.group(2))


def _phone(m: Match) -> str:
    return read_digits(m.group(0)).replace('一', '幺')


def _number(m: Match) -> str:
    text = m.group(0)
    following = m.string[m.end():m.end() + 1]
    if text == '2' and following in LIANG_BEFORE:
        return '两'
    return read_number(text)


def _ordinal_year(m: Match) -> str:
    return read_digits(m.group(1)) + '年'


_UNIT_ALT = '|'.join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True)
                     if u not in ('℃', '°C', '°F', '°'))
RULES: List[Tuple[str, 're.Pattern', Callable[[Match], str]]] = [
    ('date', re.compile(r'(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?P<suffix>)(?!\d)'),
     _date),
    ('date', re.compile(r'(?:(?P<y>\d{2,4})年)?(?P<m>\d{1,2})月(?:(?P<d>\d{1,2})(?P<suffix>[日号]))?'),
     _date),
    ('year', re.compile(r'(\d{4})年'), _ordinal_year),
    ('time', re.compile(r'(?<![\d:])([01]?\d|2[0-4])[:：]([0-5]\d)(?:[:：]([0-5]\d))?(?![\d:])'),
     _time),
    ('percent', re.compile(r'([-−]?' + _NUM + r')\s*([%％‰])'), _percent),
    ('currency', re.compile(r'([¥￥$€£])\s*(' + _NUM + r')'), _currency),
    ('temperature', re.compile(r'([-−]?' + _NUM + r')\s*(℃|°C|°F|°)'), _temperature),
    ('unit', re.compile(r'(' + _NUM + r')\s*(' + _UNIT_ALT + r')(?![A-Za-z])'), _unit),
    ('fraction', re.compile(r'(?<![\d/])(\d+)/(\d+)(?![\d/])'), _fraction),
    ('range', re.compile(r'(?<![\d.])(' + _NUM + r')\s*[-~～—–]\s*(' + _NUM + r')(?![\d.])'),
     _range),
    ('phone', re.compile(r'(?<![\d.])(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8}|\d{5,}(?=号码|电话))(?!\d)'),
     _phone),
    ('thousands', re.compile(r'\d{1,3}(?:,\d{3})+(?:\.\d+)?'), lambda m: read_number(m.group(0))),
    ('number', re.compile(r'[-−]?' + _NUM), _number),
]


def _to_halfwidth(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if 0xFF10 <= code <= 0xFF19 or 0xFF21 <= code <= 0xFF3A or 0xFF41 <= code <= 0xFF5A:
            out.append(chr(code - 0xFEE0))
        elif ch in '％＋＝＆＠＃／．':
            out.append(unicodedata.normalize('NFKC', ch))
        else:
            out.append(ch)
    return ''.join(out)


def strip_emoji(text: str) -> str:
    """Remove emoji and pictographs (they have no reading)."""
    return _EMOJI.sub('', text)


def normalize(text: str) -> str:
    """Chinese text with digits and symbols -> text a TTS front end reads correctly."""
    text = strip_emoji(_to_halfwidth(text))
    for _, pattern, reader in RULES:
        text = pattern.sub(reader, text)
    for symbol, reading in SYMBOLS:
        text = text.replace(symbol, reading)
    return re.sub(r'[ \t]{2,}', ' ', text).strip()


_SPEAKABLE = re.compile(r'[\w]', re.UNICODE)


def speakable(text: str) -> bool:
    """Whether ``text`` has anything to say (not only punctuation, emoji or spaces)."""
    return bool(_SPEAKABLE.search(strip_emoji(text).replace('_', '')))


_CLAUSE_END = re.compile(r'(?<=[。！？!?；;…])|(?<=[，,、：:])')


def chunk_text(text: str, max_chars: int = 80) -> List[str]:
    """
    Split a long sentence into pieces of at most ``max_chars`` characters.

    Splits after sentence ends first, then after clause punctuation, then hard.  Short
    text comes back as one piece.
    """
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    pieces: List[str] = []
    for sentence in re.split(r'(?<=[。！？!?；;…\n])', text):
        sentence = sentence.strip()
        if not sentence:
            continue
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        current = ''
        for clause in re.split(r'(?<=[，,、：:])', sentence):
            while len(clause) > max_chars:
                if current:
                    pieces.append(current)
                    current = ''
                pieces.append(clause[:max_chars])
                clause = clause[max_chars:]
            if len(current) + len(clause) > max_chars and current:
                pieces.append(current)
                current = ''
            current += clause
        if current:
            pieces.append(current)
    merged: List[str] = []
    for piece in pieces:
        if merged and len(merged[-1]) + len(piece) <= max_chars:
            merged[-1] += piece
        else:
            merged.append(piece)
    return [p for p in merged if p.strip()]
