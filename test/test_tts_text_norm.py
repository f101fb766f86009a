"""Text normalisation before TTS: a table of inputs and what a Chinese reader says."""
import pytest

from qwen_voice_ros.tts.text_norm import chunk_text, normalize, read_int, read_number, speakable

CASES = [
    # integers, decimals, signs
    ('我有3个苹果', '我有三个苹果'),
    ('2个人', '两个人'),
    ('一共1005元', '一共一千零五元'),
    ('第10名', '第十名'),
    ('12345', '一万二千三百四十五'),
    ('100000000', '一亿'),
    ('圆周率是3.14', '圆周率是三点一四'),
    ('0.05', '零点零五'),
    ('零下是-12', '零下是负十二'),
    ('1,234,567人', '一百二十三万四千五百六十七人'),
    # dates and times
    ('2024年3月5日', '二零二四年三月五日'),
    ('2024-03-05', '二零二四年三月五日'),
    ('2024/3/15出发', '二零二四年三月十五日出发'),
    ('12月25号', '十二月二十五号'),
    ('1998年', '一九九八年'),
    ('10:30开会', '十点三十分开会'),
    ('8:05', '八点零五分'),
    ('2:00', '两点'),
    ('23:59:09', '二十三点五十九分零九秒'),
    # percentages, currency, units, temperatures
    ('湿度60%', '湿度百分之六十'),
    ('增长了12.5%', '增长了百分之十二点五'),
    ('浓度5‰', '浓度千分之五'),
    ('¥100', '一百元'),
    ('$5.5', '五点五美元'),
    ('还有2.5km', '还有二点五公里'),
    ('速度60km/h', '速度六十公里每小时'),
    ('重3kg', '重三千克'),
    ('电池5000mAh', '电池五千毫安时'),
    ('内存16GB', '内存十六G'),
    ('等待30s', '等待三十秒'),
    ('气温-5℃', '气温零下五摄氏度'),
    ('体温37.5°C', '体温三十七点五摄氏度'),
    # fractions, ranges, phone numbers
    ('3/4的人', '四分之三的人'),
    ('3-5天', '三到五天'),
    ('10~20个', '十到二十个'),
    ('电话13812345678', '电话幺三八幺二三四五六七八'),
    # symbols and English
    ('1+1=2', '一加一等于二'),
    ('A&B', 'A和B'),
    ('3×4', '三乘四'),
    ('请打开GPS和Wi-Fi', '请打开GPS和Wi-Fi'),
    ('我用iPhone 15', '我用iPhone 十五'),
    # full-width characters, emoji
    ('３个', '三个'),
    ('好的😀👍', '好的'),
]


@pytest.mark.parametrize('text, expected', CASES)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_readers():
    assert read_int('10') == '十'
    assert read_int('110') == '一百一十'
    assert read_int('100010') == '十万零一十'
    assert read_int('20000001') == '二千万零一'
    assert read_number('-0.5') == '负零点五'
    assert read_number('007') == '零零七'


@pytest.mark.parametrize('text, ok', [('你好', True), ('。。。！', False), ('😀😀', False),
                                      ('   ', False), ('OK', True), ('……？！', False)])
def test_speakable(text, ok):
    assert speakable(text) == ok


def test_chunk_text_keeps_pieces_short_and_complete():
    text = '这是一个很长的句子，' * 30 + '结束。'
    pieces = chunk_text(text, max_chars=60)
    assert len(pieces) > 3
    assert all(len(p) <= 60 for p in pieces)
    assert ''.join(pieces) == text
    assert chunk_text('短句。') == ['短句。']
    assert chunk_text('') == []
    no_punct = '啊' * 250
    assert ''.join(chunk_text(no_punct, 100)) == no_punct
