import pytest

from clagent.config import Settings, resolve_home
from clagent.errors import ClagentError


def test_precedence_flag_env_file_default(tmp_path, monkeypatch):
    assert Settings.load(tmp_path).port == 8765
    (tmp_path / "config.toml").write_text("[clagent]\nport = 9000\nquant = \"Q4_K_M\"\n")
    assert Settings.load(tmp_path).port == 9000
    monkeypatch.setenv("CLAGENT_PORT", "9100")
    s = Settings.load(tmp_path)
    assert (s.port, s.quant) == (9100, "Q4_K_M")
    assert Settings.load(tmp_path, port=9200).port == 9200


def test_written_settings_read_back(tmp_path):
    s = Settings(port=1234, quant="Q4_0")
    s.write(tmp_path)
    assert Settings.load(tmp_path) == s


@pytest.mark.parametrize("text,match", [
    ("port = [", "not valid TOML"), ("[clagent]\nbogus = 1\n", "unknown setting"),
    ("[clagent]\nport = \"many\"\n", "must be int"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, match):
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ClagentError, match=match):
        Settings.load(tmp_path)


def test_home_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAGENT_HOME", str(tmp_path / "env"))
    assert resolve_home(None) == tmp_path / "env"
    assert resolve_home(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("CLAGENT_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_home(None) == tmp_path / "xdg" / "clagent"


def test_string_settings_with_quotes_round_trip(tmp_path):
    s = Settings(system_prompt='Say "hi" \\ politely.')
    s.write(tmp_path)
    assert Settings.load(tmp_path).system_prompt == 'Say "hi" \\ politely.'
