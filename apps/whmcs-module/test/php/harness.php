<?php
/**
 * Stands in for the few parts of WHMCS the panelkit module and hooks use, then makes one call:
 *  - logModuleCall($module, $action, $request, $response, $processed, $replaceVars): kept, and scrubbed
 *    the way WHMCS does with the replace-vars (each value replaced by asterisks in the stored entry);
 *  - WHMCS\Database\Capsule::table(...)->where(...)->update()/first(): updates recorded, first() answers
 *    from the rows the test gives (tblservers for the hooks);
 *  - add_hook($hook, $priority, $fn): hooks kept so the test can fire one;
 *  - the WHMCS and ADMINAREA constants (ADMINAREA only when the call is an admin's).
 *
 * Input (stdin, JSON): { "root": dir with modules/ and includes/, "call": function name without the
 * prefix | null, "params": $params, "admin": bool, "hook": name | null, "hookVars": {…}, "rows": {table:
 * [rows]} }. Output (stdout, JSON): { "result": …, "log": [entries], "updates": [...], "hooks": [names] }.
 */

namespace WHMCS\Database {
    class Capsule
    {
        /** @var array */
        public static $rows = array();
        /** @var array */
        public static $updates = array();

        public static function table($name)
        {
            return new CapsuleQuery($name);
        }
    }

    class CapsuleQuery
    {
        private $table;
        private $wheres = array();

        public function __construct($table)
        {
            $this->table = $table;
        }

        public function where($column, $value)
        {
            $this->wheres[$column] = $value;
            return $this;
        }

        public function orderBy($column)
        {
            return $this;
        }

        public function update(array $values)
        {
            Capsule::$updates[] = array('table' => $this->table, 'where' => $this->wheres, 'values' => $values);
            return 1;
        }

        public function first()
        {
            foreach (Capsule::$rows[$this->table] ?? array() as $row) {
                $match = true;
                foreach ($this->wheres as $column => $value) {
                    if (!array_key_exists($column, $row) || (string) $row[$column] !== (string) $value) {
                        $match = false;
                    }
                }
                if ($match) {
                    return (object) $row;
                }
            }
            return null;
        }
    }
}

namespace {
    define('WHMCS', true);

    $input = json_decode(stream_get_contents(STDIN), true);
    if (!is_array($input)) {
        fwrite(STDERR, "harness: stdin is not a JSON object\n");
        exit(2);
    }
    if (!empty($input['admin'])) {
        define('ADMINAREA', true);
    } else {
        define('CLIENTAREA', true);
    }
    define('ROOTDIR', $input['root']);

    $GLOBALS['harness_log'] = array();
    $GLOBALS['harness_hooks'] = array();

    function logModuleCall($module, $action, $request, $response, $processed = null, $replaceVars = array())
    {
        $scrub = function ($value) use ($replaceVars) {
            $text = is_string($value) ? $value : json_encode($value);
            foreach ((array) $replaceVars as $secret) {
                if (is_string($secret) && $secret !== '') {
                    $text = str_replace($secret, str_repeat('*', 8), $text);
                    // WHMCS stores the JSON-escaped form too when the data is an array.
                    $text = str_replace(trim(json_encode($secret), '"'), str_repeat('*', 8), $text);
                }
            }
            return $text;
        };
        $GLOBALS['harness_log'][] = array(
            'module' => $module,
            'action' => $action,
            'request' => $scrub($request),
            'response' => $scrub($response),
            'processed' => $scrub($processed),
            'replaceVarsCount' => count((array) $replaceVars),
        );
    }

    function add_hook($hook, $priority, $fn)
    {
        $GLOBALS['harness_hooks'][$hook][] = $fn;
    }

    foreach ($input['rows'] ?? array() as $table => $rows) {
        \WHMCS\Database\Capsule::$rows[$table] = $rows;
    }

    require $input['root'] . '/modules/servers/panelkit/panelkit.php';
    require $input['root'] . '/includes/hooks/panelkit.php';

    $result = null;
    if (!empty($input['call'])) {
        $fn = 'panelkit_' . $input['call'];
        if (!function_exists($fn)) {
            fwrite(STDERR, "harness: the module has no $fn\n");
            exit(2);
        }
        $result = $fn($input['params'] ?? array());
    }
    if (!empty($input['hook'])) {
        foreach ($GLOBALS['harness_hooks'][$input['hook']] ?? array() as $fn) {
            $vars = $input['hookVars'] ?? array();
            if (isset($vars['user']) && is_array($vars['user'])) {
                $vars['user'] = (object) $vars['user'];
            }
            if (isset($vars['invoice']) && is_array($vars['invoice'])) {
                $vars['invoice'] = (object) $vars['invoice'];
            }
            $fn($vars);
        }
    }

    echo json_encode(array(
        'result' => $result,
        'log' => $GLOBALS['harness_log'],
        'updates' => \WHMCS\Database\Capsule::$updates,
        'hooks' => array_keys($GLOBALS['harness_hooks']),
    ));
}
