{* panelkit: the answer of a connector action that returns data (snapshots, backups, a console link). *}
<div class="panelkit-action">
    <h3>{$panelkit_action|escape:'html'}</h3>
    {if $panelkit_message}<p>{$panelkit_message|escape:'html'}</p>{/if}
    {if $panelkit_url}
    <p><a class="btn btn-primary" href="{$panelkit_url|escape:'html'}" target="_blank" rel="noopener">Open</a></p>
    {/if}
    <pre>{$panelkit_data|escape:'html'}</pre>
</div>
