"""The setup form lists the engines a search weighs by default: physics-only engines beside
calibrated ones only where no engine is calibrated (CPU, Gaudi), with their weight formats."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import SelectionList

from budsim.tui.app import BudsimApp
from budsim.tui.catalog import load_catalog

from .conftest import async_test, wait_for


def test_physics_only_engines_are_listed_where_every_engine_is_physics_only() -> None:
    catalog = load_catalog()
    assert catalog.engine_ids_for("cuda") == ["vllm", "sglang", "trtllm"]
    assert catalog.engine_ids_for("cpu") == ["vllm", "llamacpp"]
    assert catalog.engine_ids_for("hpu") == ["vllm", "deepspeed"]
    # llama.cpp's GGUF formats are offered where it is listed, and only there
    cpu, cuda = catalog.quantizations_for("cpu"), catalog.quantizations_for("cuda")
    assert {"q4_k_m", "q5_k_m", "q8_0"} <= set(cpu)
    assert not {"q4_k_m", "q5_k_m", "q8_0"} & set(cuda)


@async_test
async def test_switching_to_a_cpu_ticks_its_engines_unless_the_user_chose(db_path: Path) -> None:
    """With the default selection (everything ticked) a CPU offers vLLM and llama.cpp, both
    ticked; a selection the user narrowed is kept where it applies."""
    from budsim.tui.screens.setup import SetupScreen
    from budsim.tui.widgets.engine_select import EngineQuantSelect

    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        setup = app.screen
        select = setup.query_one(EngineQuantSelect)
        setup.query_one("#hardware").value = "xeon-8480"  # type: ignore[attr-defined]
        await pilot.pause()
        engines, quants = select.selected()
        assert engines == ("vllm", "llamacpp") and quants is not None and "q4_k_m" in quants
        # narrowed to vLLM on a GPU, the choice carries over
        setup.query_one("#hardware").value = "h100-sxm"  # type: ignore[attr-defined]
        await pilot.pause()
        select.query_one("#engines", SelectionList).deselect("sglang")
        select.query_one("#engines", SelectionList).deselect("trtllm")
        await pilot.pause()
        setup.query_one("#hardware").value = "xeon-8480"  # type: ignore[attr-defined]
        await pilot.pause()
        assert select.selected()[0] == ("vllm",)
