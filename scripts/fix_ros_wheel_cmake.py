"""Point the ROS wheels' exported CMake files at this venv's Python headers.

The ``ros-jazzy-*`` wheels ship ``*.cmake`` files naming the wheel build host's
Python include directories (``/opt/python/cp3XX-cp3XX/include/python3.XX`` and
its numpy include dir).  Building an interface package against them needs this
venv's paths instead.  Idempotent.
"""
import pathlib
import re
import sys
import sysconfig

import numpy


def main(prefix):
    share = pathlib.Path(prefix) / 'share'
    py_inc = sysconfig.get_paths()['include']
    np_inc = numpy.get_include()
    host_np = re.compile(r'/opt/python/cp3\d+-cp3\d+[^;"\s]*?/numpy/[^;"\s]*include')
    host_py = re.compile(r'/opt/python/cp3\d+-cp3\d+/include/python3\.\d+')
    changed = 0
    for path in share.rglob('*.cmake'):
        text = path.read_text(errors='replace')
        new = host_py.sub(py_inc, host_np.sub(np_inc, text))
        if new != text:
            path.write_text(new)
            changed += 1
    print('fixed %d cmake files under %s' % (changed, share))


if __name__ == '__main__':
    main(sys.argv[1])
