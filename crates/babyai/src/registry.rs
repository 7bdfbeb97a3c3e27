//! Registered ids: BALROG's MixedTrainLocal tasks and the standard single-room (and a few
//! multi-room) BabyAI levels, with MiniGrid's registration parameters.

use vldac_core::EnvError;

use crate::env::{BabyAi, LevelChoice};
use crate::grid::Color;
use crate::levels::{ActionKind, Level, LevelGenConfig, MixedTask, SelectBy};

/// BALROG's `babyai_kwargs` (`num_dists: 0`) for its five MixedTrainLocal tasks.
pub const BALROG_NUM_DISTS: usize = 0;

/// The fork's default number of distractors for MixedTrainLocal.
pub const MIXED_DEFAULT_NUM_DISTS: usize = 8;

/// Every id `make` accepts.
pub fn ids() -> Vec<String> {
    let mut ids = vec!["BabyAI-MixedTrainLocal-v0".to_string()];
    ids.extend(MixedTask::ALL.iter().map(|t| format!("BabyAI-MixedTrainLocal-v0/{}", t.name())));
    ids.push("BabyAI-MixedTestLocal-v0".to_string());
    ids.extend(MixedTask::ALL.iter().map(|t| format!("BabyAI-MixedTestLocal-v0/{}", t.name())));
    ids.extend(LEVEL_IDS.iter().map(|s| s.to_string()));
    ids
}

/// The single levels (MiniGrid 3.2.0 ids).
pub const LEVEL_IDS: &[&str] = &[
    "BabyAI-GoToRedBallGrey-v0",
    "BabyAI-GoToRedBall-v0",
    "BabyAI-GoToRedBallNoDists-v0",
    "BabyAI-GoToObj-v0",
    "BabyAI-GoToObjS4-v0",
    "BabyAI-GoToObjS6-v1",
    "BabyAI-GoToLocal-v0",
    "BabyAI-GoToLocalS5N2-v0",
    "BabyAI-GoToLocalS6N2-v0",
    "BabyAI-GoToLocalS6N3-v0",
    "BabyAI-GoToLocalS6N4-v0",
    "BabyAI-GoToLocalS7N4-v0",
    "BabyAI-GoToLocalS7N5-v0",
    "BabyAI-GoToLocalS8N2-v0",
    "BabyAI-GoToLocalS8N3-v0",
    "BabyAI-GoToLocalS8N4-v0",
    "BabyAI-GoToLocalS8N5-v0",
    "BabyAI-GoToLocalS8N6-v0",
    "BabyAI-GoToLocalS8N7-v0",
    "BabyAI-GoToRedBlueBall-v0",
    "BabyAI-GoToDoor-v0",
    "BabyAI-GoToObjDoor-v0",
    "BabyAI-GoToObjMaze-v0",
    "BabyAI-GoToObjMazeOpen-v0",
    "BabyAI-GoToObjMazeS4R2-v0",
    "BabyAI-GoToObjMazeS4-v0",
    "BabyAI-GoToObjMazeS5-v0",
    "BabyAI-GoToObjMazeS6-v0",
    "BabyAI-GoToObjMazeS7-v0",
    "BabyAI-GoToSeqS5R2-v0",
    "BabyAI-PickupLoc-v0",
    "BabyAI-PickupDist-v0",
    "BabyAI-PickupDistDebug-v0",
    "BabyAI-PutNextLocal-v0",
    "BabyAI-PutNextLocalS5N3-v0",
    "BabyAI-PutNextLocalS6N4-v0",
    "BabyAI-OpenRedDoor-v0",
    "BabyAI-OpenDoor-v0",
    "BabyAI-OpenDoorDebug-v0",
    "BabyAI-OpenDoorColor-v0",
    "BabyAI-OpenDoorLoc-v0",
    "BabyAI-OpenTwoDoors-v0",
    "BabyAI-OpenRedBlueDoors-v0",
    "BabyAI-OpenRedBlueDoorsDebug-v0",
    "BabyAI-OpenDoorsOrderN2-v0",
    "BabyAI-OpenDoorsOrderN4-v0",
    "BabyAI-OpenDoorsOrderN2Debug-v0",
    "BabyAI-OpenDoorsOrderN4Debug-v0",
];

/// True for ids of this crate.
pub fn is_babyai_id(id: &str) -> bool {
    level_choice(id).is_some()
}

/// The level behind an id.
pub fn level_choice(id: &str) -> Option<LevelChoice> {
    for (base, test) in [("BabyAI-MixedTrainLocal-v0", false), ("BabyAI-MixedTestLocal-v0", true)] {
        if id == base {
            return Some(LevelChoice::MixedTrainLocal { num_dists: MIXED_DEFAULT_NUM_DISTS, test });
        }
        if let Some(task) = id.strip_prefix(base).and_then(|t| t.strip_prefix('/')) {
            let (task, num_dists) = (MixedTask::from_name(task)?, BALROG_NUM_DISTS);
            let level = if test {
                Level::MixedTestLocal { task, num_dists }
            } else {
                Level::MixedTrainLocal { task, num_dists }
            };
            return Some(LevelChoice::Fixed(level));
        }
    }
    let goto_local = |room_size, num_dists| Level::GoToLocal { room_size, num_dists };
    let maze = |room_size, n, num_dists, doors_open| Level::GoTo {
        room_size,
        num_rows: n,
        num_cols: n,
        num_dists,
        doors_open,
    };
    let level = match id {
        "BabyAI-GoToRedBallGrey-v0" => Level::GoToRedBallGrey { room_size: 8, num_dists: 7 },
        "BabyAI-GoToRedBall-v0" => Level::GoToRedBall { room_size: 8, num_dists: 7 },
        "BabyAI-GoToRedBallNoDists-v0" => Level::GoToRedBall { room_size: 8, num_dists: 0 },
        "BabyAI-GoToObj-v0" => Level::GoToObj { room_size: 8 },
        "BabyAI-GoToObjS4-v0" => Level::GoToObj { room_size: 4 },
        "BabyAI-GoToObjS6-v1" => Level::GoToObj { room_size: 6 },
        "BabyAI-GoToLocal-v0" => goto_local(8, 8),
        "BabyAI-GoToLocalS5N2-v0" => goto_local(5, 2),
        "BabyAI-GoToLocalS6N2-v0" => goto_local(6, 2),
        "BabyAI-GoToLocalS6N3-v0" => goto_local(6, 3),
        "BabyAI-GoToLocalS6N4-v0" => goto_local(6, 4),
        "BabyAI-GoToLocalS7N4-v0" => goto_local(7, 4),
        "BabyAI-GoToLocalS7N5-v0" => goto_local(7, 5),
        "BabyAI-GoToLocalS8N2-v0" => goto_local(8, 2),
        "BabyAI-GoToLocalS8N3-v0" => goto_local(8, 3),
        "BabyAI-GoToLocalS8N4-v0" => goto_local(8, 4),
        "BabyAI-GoToLocalS8N5-v0" => goto_local(8, 5),
        "BabyAI-GoToLocalS8N6-v0" => goto_local(8, 6),
        "BabyAI-GoToLocalS8N7-v0" => goto_local(8, 7),
        "BabyAI-GoToRedBlueBall-v0" => Level::GoToRedBlueBall { room_size: 8, num_dists: 7 },
        "BabyAI-GoToDoor-v0" => Level::GoToDoor,
        "BabyAI-GoToObjDoor-v0" => Level::GoToObjDoor,
        "BabyAI-GoToObjMaze-v0" => maze(8, 3, 1, false),
        "BabyAI-GoToObjMazeOpen-v0" => maze(8, 3, 1, true),
        "BabyAI-GoToObjMazeS4R2-v0" => maze(4, 2, 1, false),
        "BabyAI-GoToObjMazeS4-v0" => maze(4, 3, 1, false),
        "BabyAI-GoToObjMazeS5-v0" => maze(5, 3, 1, false),
        "BabyAI-GoToObjMazeS6-v0" => maze(6, 3, 1, false),
        "BabyAI-GoToObjMazeS7-v0" => maze(7, 3, 1, false),
        "BabyAI-GoToSeqS5R2-v0" => Level::LevelGen(LevelGenConfig {
            room_size: 5,
            num_rows: 2,
            num_cols: 2,
            num_dists: 4,
            action_kinds: vec![ActionKind::GoTo],
            locked_room_prob: 0.0,
            locations: false,
            unblocking: false,
            ..LevelGenConfig::default()
        }),
        "BabyAI-PickupLoc-v0" => Level::PickupLoc,
        "BabyAI-PickupDist-v0" => Level::PickupDist { debug: false },
        "BabyAI-PickupDistDebug-v0" => Level::PickupDist { debug: true },
        "BabyAI-PutNextLocal-v0" => Level::PutNextLocal { room_size: 8, num_objs: 8 },
        "BabyAI-PutNextLocalS5N3-v0" => Level::PutNextLocal { room_size: 5, num_objs: 3 },
        "BabyAI-PutNextLocalS6N4-v0" => Level::PutNextLocal { room_size: 6, num_objs: 4 },
        "BabyAI-OpenRedDoor-v0" => Level::OpenRedDoor,
        "BabyAI-OpenDoor-v0" => Level::OpenDoor { debug: false, select_by: None },
        "BabyAI-OpenDoorDebug-v0" => Level::OpenDoor { debug: true, select_by: None },
        "BabyAI-OpenDoorColor-v0" => Level::OpenDoor { debug: false, select_by: Some(SelectBy::Color) },
        "BabyAI-OpenDoorLoc-v0" => Level::OpenDoor { debug: false, select_by: Some(SelectBy::Loc) },
        "BabyAI-OpenTwoDoors-v0" => Level::OpenTwoDoors { first: None, second: None, strict: false },
        "BabyAI-OpenRedBlueDoors-v0" => {
            Level::OpenTwoDoors { first: Some(Color::Red), second: Some(Color::Blue), strict: false }
        }
        "BabyAI-OpenRedBlueDoorsDebug-v0" => {
            Level::OpenTwoDoors { first: Some(Color::Red), second: Some(Color::Blue), strict: true }
        }
        "BabyAI-OpenDoorsOrderN2-v0" => Level::OpenDoorsOrder { num_doors: 2, debug: false },
        "BabyAI-OpenDoorsOrderN4-v0" => Level::OpenDoorsOrder { num_doors: 4, debug: false },
        "BabyAI-OpenDoorsOrderN2Debug-v0" => Level::OpenDoorsOrder { num_doors: 2, debug: true },
        "BabyAI-OpenDoorsOrderN4Debug-v0" => Level::OpenDoorsOrder { num_doors: 4, debug: true },
        _ => return None,
    };
    Some(LevelChoice::Fixed(level))
}

/// Builds an environment by id (the error lists the known ids).
pub fn make(id: &str) -> Result<BabyAi, EnvError> {
    level_choice(id)
        .map(|c| BabyAi::new(id, c))
        .ok_or_else(|| EnvError::UnknownId { id: id.to_string(), known: ids().join(", ") })
}

/// The frame `vldac env render` writes: the agent's view (BALROG's image), or with `top_down`
/// the whole level with the field of view highlighted.
pub fn render(id: &str, seed: u64, top_down: bool) -> Result<vldac_core::Frame, EnvError> {
    let mut env = make(id)?;
    env.reset_episode(Some(seed));
    Ok(if top_down { env.render_full() } else { env.render_pov() })
}
