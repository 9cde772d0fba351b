"""Packaging for embeddedserver: flat top-level modules, no runtime dependencies."""

from setuptools import setup

MODULES = [
    "embeddedrecord",
    "embeddedscript",
    "embeddedmatch",
    "embeddedconn",
    "embeddedlisten",
    "embeddedserver",
    "embeddedcli",
    "embeddeddemo",
    "embeddedtls",
    "embeddedscriptfile",
    "embeddedreplay",
    "testingsocket",
    "testingsocketcapture",
    "embeddedtcpserver",
    "embeddedtcpmessages",
    "embeddedtcpfactory",
    "pytest_embeddedserver",
]

TEST_TOOLS = [
    "pytest>=8",
    "pytest-asyncio>=0.23",
    "pytest-xdist>=3",
    "pytest-timeout>=2",
    "hypothesis>=6",
    "requests>=2.28",
    "requests-unixsocket>=0.4.1",  # 0.3 breaks with requests >= 2.32
    "trustme>=1.1",
    "ruff>=0.5",
    "mypy>=1.8",
]

setup(
    name="embeddedserver",
    version="0.1.0",
    description="Scripted fake TCP servers and recording sockets for testing network clients",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    py_modules=MODULES,
    install_requires=[],
    extras_require={"test": TEST_TOOLS, "tls": ["trustme>=1.1"]},
    entry_points={
        "pytest11": ["embeddedserver = pytest_embeddedserver"],
        "console_scripts": ["embeddedserver = embeddedcli:main"],
    },
    classifiers=[
        "Framework :: Pytest",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Software Development :: Testing",
    ],
)
