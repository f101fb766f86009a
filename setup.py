"""ament_python package: qwen_voice_ros."""
from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'qwen_voice_ros'


def package_files(pattern):
    return [p for p in glob(pattern, recursive=True) if os.path.isfile(p)]


# One console script per node and tool; the same names are the launch file's executables.
CONSOLE_SCRIPTS = [
    'qwen-voice-capture = qwen_voice_ros.nodes.capture_node:main',
    'qwen-voice-hearing = qwen_voice_ros.nodes.hearing_node:main',
    'qwen-voice-dialect = qwen_voice_ros.nodes.dialect_node:main',
    'qwen-voice-llm = qwen_voice_ros.nodes.llm_node:main',
    'qwen-voice-dialect-llm = qwen_voice_ros.nodes.dialect_llm:main',
    'qwen-voice-tts = qwen_voice_ros.nodes.tts_node:main',
    'qwen-voice-playback = qwen_voice_ros.nodes.playback_node:main',
    'qwen-voice-stack = qwen_voice_ros.stack.runner:main',
    'qwen-voice-replay = qwen_voice_ros.replay.cli:main',
    'qwen-voice-report = qwen_voice_ros.replay.turn_report:main',
    'qwen-voice-dialect-eval = qwen_voice_ros.dialect.eval_cli:main',
    'qwen-voice-asr-eval = qwen_voice_ros.asr.eval_cli:main',
    'qwen-voice-export = qwen_voice_ros.llm.export_cli:main',
    'qwen-voice-bench-llm = qwen_voice_ros.llm.bench_cli:main',
    'qwen-voice-clone-eval = qwen_voice_ros.tts.clone_eval:main',
]

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={package_name: ['dialect/data/*', 'data/*']},
    include_package_data=True,
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', package_files('launch/*.py')),
        ('share/' + package_name + '/config', package_files('config/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='qwen_voice_ros maintainers',
    maintainer_email='noreply@example.com',
    description='Voice stack for Chinese-speaking robots on ROS 2.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={'console_scripts': CONSOLE_SCRIPTS},
)
