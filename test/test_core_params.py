"""core.params: backend parameter registry and validation (no ROS)."""
import pytest

from qwen_voice_ros.core.params import Param, ParamError, Registry, check_all


class _Fake:
    PARAMS = (Param('rate', 16000, 'sample rate', min=8000, max=48000),
              Param('voice', 'a', 'voice', choices=('a', 'b')),
              Param('gain', 1.0, 'gain', min=0.0),
              Param('on', True, 'switch'))

    def __init__(self, **kw):
        self.kw = kw


def test_defaults_and_overrides():
    assert check_all(_Fake.PARAMS, {'rate': 22050}) == {
        'rate': 22050, 'voice': 'a', 'gain': 1.0, 'on': True}


@pytest.mark.parametrize('values', [
    {'rate': 0}, {'rate': 'abc'}, {'rate': 1.5}, {'voice': 'z'}, {'gain': float('nan')},
    {'gain': -1.0}, {'on': 1}, {'rate': True}])
def test_bad_values_are_refused_with_the_name(values):
    with pytest.raises(ParamError) as info:
        check_all(_Fake.PARAMS, values)
    assert list(values)[0] in str(info.value)


def test_registry_creates_lazily_and_names_choices():
    registry = Registry('tts', {'fake': __name__ + ':_Fake'})
    assert registry.names == ('fake',)
    assert registry.create('fake', {'rate': 8000}).kw['rate'] == 8000
    with pytest.raises(KeyError, match='available: fake'):
        registry.load_class('nope')
